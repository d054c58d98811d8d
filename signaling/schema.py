"""JSON Schema of the signalling protocol, generated from its structs.

Clients in other languages (the kiosk page's scripts, a future app) read the contract from
docs/protocol.schema.json rather than from Python. It is generated, never edited:
``python -m lapak.signaling.schema > docs/protocol.schema.json``; a test fails when the file
is stale.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec

from lapak.signaling.messages import ServerMessage
from lapak.signaling.protocol import ClientMessage

REGENERATE = "python -m lapak.signaling.schema > docs/protocol.schema.json"

_REF = "#/$defs/{name}"


def protocol_schema() -> dict[str, Any]:
    """One document: ``$defs/ClientMessage`` and ``$defs/ServerMessage`` are the two
    directions; the root accepts a frame of either."""
    (client, server), components = msgspec.json.schema_components(
        (ClientMessage, ServerMessage), ref_template=_REF
    )
    defs: dict[str, Any] = {"ClientMessage": client, "ServerMessage": server, **components}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Lapak signalling protocol",
        "description": f"Generated from lapak.signaling.protocol and "
        f"lapak.signaling.messages; do not edit. Regenerate: {REGENERATE}",
        "anyOf": [
            {"$ref": _REF.format(name="ClientMessage")},
            {"$ref": _REF.format(name="ServerMessage")},
        ],
        "$defs": defs,
    }


def render() -> str:
    """The schema as the text of docs/protocol.schema.json (stable, so diffs are small)."""
    return json.dumps(protocol_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
