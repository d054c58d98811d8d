"""Video tiers, as docs/protocol.md ("Video tiers", `zoom`) states them: the server tells each
booth to send `full` video on air or zoomed, a `thumbnail` otherwise; the booth's track obeys."""

from __future__ import annotations

import asyncio
import fractions
import itertools

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack
from hub_driver import HubDriver, Message

from lapak.media.video_tier import THUMBNAIL_WIDTH, ThumbnailGate, TieredVideoTrack, thumbnail_size
from lapak.signaling.config import ServerConfig


def booth_states(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m["type"] == "booth_state"]


def seat_two(hub: HubDriver) -> tuple[int, int, int, str, str]:
    """An officer at d1 and two booths seated there; their booth connections and visit ids."""
    officer = hub.join("officer", desk="d1")
    b1 = hub.join("booth", booth="b1")
    b2 = hub.join("booth", booth="b2")
    return officer, b1, b2, hub.start_visit(b1), hub.start_visit(b2)


def last_tier(step_messages: list[Message]) -> str:
    states = booth_states(step_messages)
    assert states, f"a booth_state was expected, got {step_messages}"
    return str(states[-1]["video"])


def test_off_air_booths_are_told_thumbnail_and_the_on_air_one_full() -> None:
    hub = HubDriver()
    officer, b1, b2, v1, v2 = seat_two(hub)
    step = hub.send(officer, {"type": "focus", "id": 3, "visit": v1})
    assert last_tier(step.to(b1)) == "full", "the booth put on air sends full video"
    step = hub.send(officer, {"type": "focus", "id": 4, "visit": v2})
    assert last_tier(step.to(b1)) == "thumbnail", "the booth that left the air sends less"
    assert last_tier(step.to(b2)) == "full"


def test_a_seated_visit_starts_as_a_thumbnail() -> None:
    hub = HubDriver()
    hub.join("officer", desk="d1")
    booth = hub.join("booth", booth="b1")
    step = hub.send(
        booth, {"type": "start_visit", "id": 2, "claimant": {"name": "S", "membership_no": "1"}}
    )
    assert last_tier(step.to(booth)) == "thumbnail", "nobody looks closely yet"


def test_zoom_asks_the_zoomed_booth_for_full_video_and_lets_the_last_one_go() -> None:
    hub = HubDriver()
    officer, b1, b2, v1, v2 = seat_two(hub)
    step = hub.send(officer, {"type": "zoom", "id": 5, "visit": v1})
    assert step.to(officer) == [{"type": "ack", "re": 5}]
    assert last_tier(step.to(b1)) == "full"
    assert step.to(b2) == [], "a booth whose tier did not change is told nothing"
    step = hub.send(officer, {"type": "zoom", "id": 6, "visit": v2})
    assert (last_tier(step.to(b1)), last_tier(step.to(b2))) == ("thumbnail", "full")
    step = hub.send(officer, {"type": "zoom", "id": 7, "visit": v2})
    assert step.to(b2) == [], "the same zoom again changes nothing"
    step = hub.send(officer, {"type": "zoom", "id": 8, "visit": None})
    assert last_tier(step.to(b2)) == "thumbnail"


def test_zoom_is_not_an_event_and_is_refused_where_focus_is() -> None:
    hub = HubDriver()
    officer, _b1, _b2, v1, _v2 = seat_two(hub)
    step = hub.send(officer, {"type": "zoom", "id": 5, "visit": v1})
    assert step.events == [], "where the officer looks is not logged"
    other = hub.join("officer", desk="d2", sub="o2")
    refused = hub.say(other, {"type": "zoom", "id": 6, "visit": v1})
    assert refused[0]["type"] == "error" and refused[0]["code"] == "visit_not_active", refused
    missing = hub.say(officer, {"type": "zoom", "id": 7, "visit": "nope"})
    assert missing[0]["code"] == "not_found", missing
    for role, code in (("booth", "forbidden"), ("supervisor", "read_only")):
        conn = hub.join(role, booth="b9") if role == "booth" else hub.join(role)
        answer = hub.say(conn, {"type": "zoom", "id": 8, "visit": v1})
        assert answer[0]["code"] == code, f"{role}: {answer}"


def test_a_visit_that_leaves_the_desk_takes_its_zoom_with_it() -> None:
    hub = HubDriver()
    officer, _b1, _b2, v1, _v2 = seat_two(hub)
    hub.send(officer, {"type": "zoom", "id": 5, "visit": v1})
    hub.send(officer, {"type": "end_visit", "id": 6, "visit": v1, "outcome": "abandoned"})
    assert hub.hub.projection.zoomed == {}, "an ended visit is zoomed nowhere"


def test_a_new_officer_session_starts_with_nothing_zoomed() -> None:
    hub = HubDriver()
    officer, b1, _b2, v1, _v2 = seat_two(hub)
    hub.send(officer, {"type": "zoom", "id": 5, "visit": v1})
    hub.disconnect(officer)
    again = hub.connect()
    step = hub.send(again, {"type": "hello", "id": 1, "token": hub.token("officer", desk="d1")})
    assert last_tier(step.to(b1)) == "thumbnail", "a new console has zoomed nothing"


def test_video_tiers_off_tells_every_booth_full() -> None:
    hub = HubDriver(ServerConfig(video_tiers=False))
    officer, b1, b2, v1, _v2 = seat_two(hub)
    step = hub.send(officer, {"type": "focus", "id": 3, "visit": v1})
    assert last_tier(step.to(b1)) == "full" and last_tier(step.to(b2)) == "full"


# -- the booth's side: what the track sends -----------------------------------------------


@pytest.mark.parametrize(
    ("size", "thumb"),
    [
        ((640, 480), (160, 120)),
        ((1280, 720), (160, 90)),
        ((100, 80), (100, 80)),
        ((161, 99), (160, 98)),
    ],
)
def test_thumbnail_size_keeps_the_aspect_and_even_sides(
    size: tuple[int, int], thumb: tuple[int, int]
) -> None:
    assert thumbnail_size(*size) == thumb


def test_the_thumbnail_gate_keeps_every_third_frame_of_15_fps() -> None:
    gate = ThumbnailGate(5.0)
    kept = [i for i in range(30) if gate.keep(i / 15)]
    assert kept == list(range(0, 30, 3)), kept


class Frames(MediaStreamTrack):
    """640x480 frames at 15 fps by their pts (no pacing: the test asks for them)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(np.zeros((480, 640, 3), np.uint8), format="rgb24")
        frame.pts, frame.time_base = self.n * 6000, fractions.Fraction(1, 90000)
        self.n += 1
        return frame


def test_the_tiered_track_sends_thumbnails_off_air_and_every_frame_full() -> None:
    tier = ["thumbnail"]
    track = TieredVideoTrack(Frames(), lambda: tier[0])  # type: ignore[arg-type, return-value]

    async def take(n: int) -> list[av.VideoFrame]:
        return [await track.recv() for _ in range(n)]

    small = asyncio.run(take(4))
    assert {(f.width, f.height) for f in small} == {(THUMBNAIL_WIDTH, 120)}
    gaps = {round(float(b.time - a.time), 3) for a, b in itertools.pairwise(small)}
    assert gaps == {0.2}, f"5 a second by the frames' own clock, got gaps {gaps}"
    tier[0] = "full"
    full = asyncio.run(take(3))
    assert {(f.width, f.height) for f in full} == {(640, 480)}
    gaps = {round(float(b.time - a.time), 3) for a, b in itertools.pairwise(full)}
    assert gaps == {0.067}, "on air every frame passes"
    assert track.sent == {"thumbnail": 4, "full": 3}
