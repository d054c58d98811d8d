"""A snapshot of a tile as a PNG file, and the SHA-256 the server records for it."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import av

from lapak.console.config import write_private


def snapshot_path(folder: Path, visit: str, at: float) -> Path:
    """``<visit>-<local time>-<ms>.png``: sorted by time, unique per millisecond."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(at))
    return folder / f"{visit}-{stamp}-{int(at * 1000) % 1000:03d}.png"


def save_png(frame: av.VideoFrame, path: Path) -> str:
    """Write the frame as PNG (0600: it shows a claimant's face and documents); return the
    SHA-256 of exactly the bytes written."""
    buffer = io.BytesIO()
    frame.to_image().save(buffer, format="PNG")  # type: ignore[no-untyped-call]  # PyAV has no hints here
    data = buffer.getvalue()
    write_private(path, data)
    return hashlib.sha256(data).hexdigest()
