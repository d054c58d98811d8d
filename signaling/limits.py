"""Length limits shared by the wire protocol, tokens and the configuration, written once."""

from __future__ import annotations

MAX_FRAME_BYTES = 64 * 1024  # UTF-8 bytes, not characters (the default max_frame_bytes)

# Caps on what a client may write into the shared state, so that a desk snapshot (six seated
# visits) stays far below any client's message limit (the console takes 1 MiB). Lengths are
# in characters: at most 4 UTF-8 bytes each.
MAX_ID = 64  # names and ids: office, desk, booth, sub, session, offer id, workflow step
MAX_NAME = 200  # a claimant's name
MAX_REASON = 200  # a rejection reason
MAX_NOTE = 1000
MAX_TOKEN = 8192
MAX_FILE_NAME = 200  # a recording's file name (recording_closed)
MAX_GAPS = 1000  # gaps listed in one recording_closed
