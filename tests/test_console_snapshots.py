"""What the officer and the supervisor see, as SVG snapshots (pytest-textual-snapshot).

The desk state is a snapshot message fed through a fake desk session (tests/console_fake.py),
the clock is frozen and every tile
shows a fixed test-card frame (drawn as styled cells, which the SVG export can show), so the
pictures are stable. Run ``pytest tests/test_console_snapshots.py --snapshot-update`` after a
deliberate change, and look at the new SVGs before committing them.
"""

from __future__ import annotations

from typing import Any

import av
import msgspec
import pytest
from console_fake import FakeDeskSession, welcome

from lapak.console.app import LapakConsole
from lapak.console.i18n import t
from lapak.console.supervisor import SupervisorConsole
from lapak.media.desk_session import DeskChange
from lapak.media.testcard import TestCard
from lapak.signaling.messages import OfficeFigures, Snapshot

NOW = 1_767_000_000.0
STEPS = ("identity", "membership", "family_card", "bank_book", "termination_letter", "decision")
NAMES = (
    ("Siti Rahayu", "10293847561"),
    ("Budi Santoso", "20394857612"),
    ("Dewi Lestari", "30495867123"),
    ("Agus Wibowo", "40596871234"),
    ("Rina Kusuma", "50697812345"),
    ("Joko Hidayat", "60798123456"),
)
SIZES = [(80, 24), (160, 48), (200, 50)]

_FRAMES: dict[tuple[int, int], av.VideoFrame] = {}


def frame(index: int) -> av.VideoFrame:
    """A fixed test card for booth ``index`` (same pixels every run)."""
    key = (index, 0)
    if key not in _FRAMES:
        card = TestCard(f"booth-{index + 1:02d}", index, 320, 240)
        rgb = card.frame_rgb(1.0, 1_234_567)
        _FRAMES[key] = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return _FRAMES[key]


def visit(slot: int, decided: int, desk: str = "desk-1") -> dict[str, Any]:
    name, number = NAMES[slot - 1]
    statuses = ["approved"] * decided + ["pending"] * (len(STEPS) - decided)
    if slot == 4 and decided:
        statuses[decided - 1] = "rejected"
    return {
        "visit": f"V{slot:06d}",
        "booth": f"booth-{slot:02d}",
        "name": name,
        "membership_no": number,
        "claim_type": "JHT",
        "state": "active",
        "desk": desk,
        "slot": slot,
        "started_at": NOW - 95 * slot - 30,
        "outcome": None,
        "routed_at": None,
        "last_on_air_at": None,
        "on_air_since": None,
        "booth_present": True,
        "booth_away_since": None,
        "current_step": decided,
        "steps": [
            {"name": n, "status": s, "reason": "document unreadable" if s == "rejected" else None}
            for n, s in zip(STEPS, statuses, strict=True)
        ],
    }


def desk_snapshot(count: int = 6, desk: str = "desk-1", on_air: int | None = 2) -> dict[str, Any]:
    visits = [visit(s, (s * 2) % 5, desk) for s in range(1, count + 1)]
    return {
        "type": "snapshot",
        "re": None,
        "desk": desk,
        "seq": 7,
        "state": {
            "desk": desk,
            "office": "main",
            "officer": "ana",
            "capacity": 6,
            "closed": False,
            "vacant": False,
            "on_air": f"V{on_air:06d}" if on_air else None,
            "visits": visits,
            "queue": 2,
        },
    }


def officer_app() -> LapakConsole:
    return LapakConsole(None, "", media=False, raw_video=False, clock=lambda: NOW, language="en",
                        session_factory=FakeDeskSession)  # fmt: skip


async def fill(pilot: Any, count: int = 6) -> None:
    """Load the desk, make slot 1 wait past the amber threshold, paint the test frames."""
    app = pilot.app
    await pilot.pause()  # run_before starts before the desk screen has mounted
    snapshot = desk_snapshot(count)
    snapshot["state"]["visits"][0]["last_on_air_at"] = NOW - 150  # amber (past 120 s)
    app.session.load(msgspec.convert(snapshot, Snapshot))
    await pilot.pause()  # the session's change reaches the app as a message
    app.desk_screen.show_status("officer ana · office main · desk desk-1")
    for slot in range(1, count + 1):
        app.tile(slot).video.show(frame(slot - 1))
    app.redraw(DeskChange(desk=True))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_grid_of_six(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(officer_app(), terminal_size=size, run_before=fill)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_two_booths_side_by_side(snap_compare: Any, size: tuple[int, int]) -> None:
    async def two(pilot: Any) -> None:
        await fill(pilot, 2)

    assert snap_compare(officer_app(), terminal_size=size, run_before=two)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_zoom(snap_compare: Any, size: tuple[int, int]) -> None:
    async def zoomed(pilot: Any) -> None:
        await fill(pilot)
        await pilot.press("tab", "z")
        await pilot.pause()
        pilot.app.tile(2).video.show(frame(1))  # repaint at the zoomed size

    assert snap_compare(officer_app(), terminal_size=size, run_before=zoomed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare: Any, size: tuple[int, int]) -> None:
    async def helped(pilot: Any) -> None:
        await fill(pilot)
        await pilot.press("question_mark")

    assert snap_compare(officer_app(), terminal_size=size, run_before=helped)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_reject_reason_picker(snap_compare: Any, size: tuple[int, int]) -> None:
    async def picking(pilot: Any) -> None:
        await fill(pilot)
        await pilot.press("tab", "x", "down")  # slot 2 is on air: no question first

    assert snap_compare(officer_app(), terminal_size=size, run_before=picking)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_decision_off_air_asks_naming_the_claimant(
    snap_compare: Any, size: tuple[int, int]
) -> None:
    async def asking(pilot: Any) -> None:
        await fill(pilot)
        await pilot.press("x")  # slot 1 selected, slot 2 on air

    assert snap_compare(officer_app(), terminal_size=size, run_before=asking)


@pytest.mark.parametrize("size", [(80, 24)], ids=["80x24"])
def test_outcome_picker_explains_what_is_not_possible(
    snap_compare: Any, size: tuple[int, int]
) -> None:
    async def finishing(pilot: Any) -> None:
        await fill(pilot)
        await pilot.press("tab", "d")  # slot 2: 4 of 6 approved, none rejected

    assert snap_compare(officer_app(), terminal_size=size, run_before=finishing)


def supervisor_app() -> SupervisorConsole:
    return SupervisorConsole(
        None, "", desk="desk-1", media=False, raw_video=False, clock=lambda: NOW, language="en",
        session_factory=FakeDeskSession,
    )  # fmt: skip


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_supervisor_view(snap_compare: Any, size: tuple[int, int]) -> None:
    async def watching(pilot: Any) -> None:
        app = pilot.app
        await fill(pilot, 4)
        app.desk_screen.show_banner(t("banner.read_only", desk="desk-1"))
        app.desk_screen.show_status("supervisor sri · office main · desk desk-1")

    assert snap_compare(supervisor_app(), terminal_size=size, run_before=watching)


DESK = {"on_air": None, "closed": False, "vacant": False, "present": True}
QUEUED = {"position": None, "estimated_wait_s": None}
OFFICE_STATS = msgspec.convert(
    {
        "office": "main",
        "desks": [
            {**DESK, "desk": "desk-1", "officer": "ana", "capacity": 6, "load": 6,
             "on_air_booth": "booth-02"},
            {**DESK, "desk": "desk-2", "officer": "budi", "capacity": 6, "load": 4,
             "on_air_booth": None},
            {**DESK, "desk": "desk-3", "officer": None, "capacity": 4, "load": 0,
             "on_air_booth": None},
        ],
        "queue": [
            {**QUEUED, "visit": "V000031", "booth": "booth-11", "waiting_s": 412.0},
            {**QUEUED, "visit": "V000032", "booth": "booth-12", "waiting_s": 95.0},
        ],
        "median_wait_s": 184.0,
        "visits_today": 50,
        "visits_per_hour": 11.5,
        "outcomes": {"completed": 41, "rejected": 6, "escalated": 2, "abandoned": 1},
    },
    OfficeFigures,
)  # fmt: skip


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_office_overview(snap_compare: Any, size: tuple[int, int]) -> None:
    async def overview(pilot: Any) -> None:
        app = pilot.app
        await fill(pilot, 6)
        app.session.welcome = welcome("supervisor", None, ["desk-1", "desk-2", "desk-3"])
        app.office_stats = OFFICE_STATS
        app.open_overview()

    assert snap_compare(supervisor_app(), terminal_size=size, run_before=overview)


@pytest.mark.parametrize("size", [(80, 24)], ids=["80x24"])
def test_office_overview_without_server_figures(snap_compare: Any, size: tuple[int, int]) -> None:
    """Without ``office_stats`` the overview still shows desks and load from the snapshots."""

    async def overview(pilot: Any) -> None:
        app = pilot.app
        await fill(pilot, 3)
        app.session.welcome = welcome("supervisor", None, ["desk-1"])
        app.open_overview()

    assert snap_compare(supervisor_app(), terminal_size=size, run_before=overview)
