"""The kiosk's choice of what it plays and relays, from hand-built ``booth_state`` messages
(view.js under node; the Chromium tests play real media through the same functions).

``bargeOf``: a supervisor's voice is heard only from the peer that ``booth_state.barge_peer``
names (the ``peer`` of its offers; null: none), while the visit is open: barging the on-air
desk, or resolving the escalated visit (no officer on air). A server that does not send the
field: any supervisor's voice, on air in an active visit with ``supervisor_present``.
``playsOfficer``: the officer is played, and relayed to recorders, on air in an active visit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE = shutil.which("node")
VIEW = Path(__file__).resolve().parents[1] / "signaling" / "kiosk" / "view.js"

BASE = {"visit": "V000001", "state": "active", "on_air": True, "supervisor_present": True}
CASES: dict[str, dict[str, Any]] = {
    "unnamed": {},  # an older server: no barge_peer at all
    "named": {"barge_peer": "sup-7"},
    "nobody": {"barge_peer": None, "supervisor_present": False},
    "null_but_present": {"barge_peer": None},
    "empty": {"barge_peer": ""},
    "off_air": {"barge_peer": "sup-7", "on_air": False},
    "escalated": {"barge_peer": "sup-7", "state": "escalated", "on_air": False},
    "escalated_untaken": {
        "barge_peer": None,
        "state": "escalated",
        "on_air": False,
        "supervisor_present": False,
    },
    "unnamed_escalated": {"state": "escalated", "on_air": False},
    "ended": {"barge_peer": "sup-7", "state": "ended"},
    "unnamed_off_air": {"on_air": False},
    "none": None,
}


@pytest.mark.skipif(NODE is None, reason="node is not installed: the kiosk's modules need it")
def test_the_kiosk_plays_only_the_barge_peer_and_relays_the_officer_on_air() -> None:
    statuses = {name: None if c is None else {**BASE, **c} for name, c in CASES.items()}
    script = f"""
const view = await import({json.dumps(VIEW.as_uri())});
const out = {{}};
for (const [name, status] of Object.entries({json.dumps(statuses)})) {{
  const barge = view.bargeOf(status);
  out[name] = {{ on: barge.on, peer: barge.peer === undefined ? "<any>" : barge.peer,
                officer: view.playsOfficer(status) }};
}}
console.log(JSON.stringify(out));
"""
    assert NODE is not None
    run = subprocess.run(
        [NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out == {
        "unnamed": {"on": True, "peer": "<any>", "officer": True},
        "named": {"on": True, "peer": "sup-7", "officer": True},
        "nobody": {"on": False, "peer": None, "officer": True},
        "null_but_present": {"on": False, "peer": None, "officer": True},
        "empty": {"on": False, "peer": None, "officer": True},
        "off_air": {"on": False, "peer": "sup-7", "officer": False},
        "escalated": {"on": True, "peer": "sup-7", "officer": False},
        "escalated_untaken": {"on": False, "peer": None, "officer": False},
        "unnamed_escalated": {"on": False, "peer": "<any>", "officer": False},
        "ended": {"on": False, "peer": "sup-7", "officer": False},
        "unnamed_off_air": {"on": False, "peer": "<any>", "officer": False},
        "none": {"on": False, "peer": "<any>", "officer": False},
    }
