"""What a resolving supervisor's engine offers a taken escalation's booth (no server): its
voice ``sendrecv`` and the booth's picture ``recvonly``, two m-lines and no officer relay
(there is no officer); ``unresolve`` drops the link and closes its peer connection."""

from __future__ import annotations

from lapak.media.officer import SupervisorMedia


def directions(sdp: str) -> list[tuple[str, str]]:
    """(kind, direction) per m-line."""
    out: list[tuple[str, str]] = []
    for section in sdp.split("\nm=")[1:]:
        kind = section.split(" ", 1)[0]
        lines = section.splitlines()
        direction = next(
            line[2:] for line in lines
            if line.strip() in ("a=sendrecv", "a=recvonly", "a=sendonly", "a=inactive")
        )  # fmt: skip
        out.append((kind, direction.strip()))
    return out


async def test_a_taken_escalation_is_offered_voice_out_and_the_booth_in() -> None:
    offers: dict[str, str] = {}

    async def send_sdp(visit: str, sdp_type: str, sdp: str, offer_id: str) -> None:
        offers[visit] = sdp

    engine = SupervisorMedia(send_sdp, audio_in="tone")
    try:
        await engine.ensure("WATCHED")  # a watched desk's booth: receive-only, officer relay
        await engine.resolve("TAKEN")
        assert directions(offers["TAKEN"]) == [("audio", "sendrecv"), ("video", "recvonly")]
        assert directions(offers["WATCHED"]) == [
            ("audio", "recvonly"), ("video", "recvonly"), ("audio", "recvonly"),
        ]  # fmt: skip
        link = engine.links["TAKEN"]
        assert link.voice is not None and link.voice.open, "the supervisor's voice is sent"
        await engine.unresolve("WATCHED")
        assert "WATCHED" in engine.links, "unresolve leaves a watched desk's link alone"
        await engine.unresolve("TAKEN")
        assert "TAKEN" not in engine.links and engine.resolving == set()
        assert link.pc.connectionState == "closed"
    finally:
        await engine.close()
