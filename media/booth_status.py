"""What the claimant's screen says: a pure function of the server's ``booth_state``.

States, in the order a visit goes through them:

* ``starting`` — connecting to the server, no visit yet
* ``queued`` — waiting in the office queue (position, estimated wait)
* ``waiting_officer`` — at a desk, the officer's media link is not up yet
* ``connected`` — at a desk with media up, off air: "the officer is with another claimant",
  and the step the officer will ask for next
* ``on_air`` — the officer hears and sees this booth, and the booth plays the officer
* ``finished`` — the visit has ended (outcome shown)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MINUTES_PER_VISIT = 6.0
"""Rough service time for the wait estimate (a desk serves several claimants in parallel)."""

STEP_PROMPTS = {
    "identity": "your identity card (e-KTP), held next to your face",
    "membership": "your membership card or number",
    "family_card": "your family card (Kartu Keluarga)",
    "bank_book": "your bank book, the page with your name",
    "termination_letter": "your letter of employment termination (paklaring)",
    "decision": "nothing more: the officer is deciding",
}


@dataclass(frozen=True)
class BoothScreen:
    state: str
    title: str
    lines: tuple[str, ...]

    def render(self, width: int = 60) -> str:
        """A plain-text box for the booth's local status view."""
        rule = "+" + "-" * (width - 2) + "+"
        body = [self.title.upper(), "", *self.lines]
        return "\n".join([rule, *(f"| {line[: width - 4]:<{width - 4}} |" for line in body), rule])


def next_step(status: dict[str, Any]) -> str | None:
    steps = status.get("steps") or []
    for step in steps:
        if step.get("status") == "pending":
            return str(step.get("name"))
    return None


def estimated_wait_minutes(position: int | None, desks_capacity: int = 6) -> float | None:
    if position is None:
        return None
    return max(1.0, position * MINUTES_PER_VISIT / max(1, desks_capacity))


def booth_screen(status: dict[str, Any], media_connected: bool) -> BoothScreen:
    visit_state = status.get("state")
    name = status.get("name") or ""
    if visit_state == "ended":
        outcome = status.get("outcome") or "ended"
        return BoothScreen("finished", "Thank you", (f"Your visit has {outcome}.",))
    if visit_state == "queued":
        position = status.get("position")
        server_wait = status.get("estimated_wait_s")
        wait = server_wait / 60.0 if server_wait is not None else estimated_wait_minutes(position)
        lines = [f"You are number {position} in the queue." if position else "You are queued."]
        if wait is not None:
            lines.append(f"Estimated wait: about {max(1.0, wait):.0f} min.")
        return BoothScreen("queued", "Please wait", tuple(lines))
    if visit_state == "active":
        step = next_step(status)
        ask = STEP_PROMPTS.get(step or "", step or "")
        if status.get("on_air"):
            lines = [f"The officer is speaking with you, {name}."]
            if ask:
                lines.append(f"Please show {ask}.")
            return BoothScreen("on_air", "On air", tuple(lines))
        if not media_connected:
            return BoothScreen(
                "waiting_officer", "Connecting", ("Connecting you to the officer's desk...",)
            )
        lines = ["The officer is with another claimant.", "Please stay in front of the camera."]
        if ask:
            lines.append(f"Next you will be asked for {ask}.")
        return BoothScreen("connected", "Please wait", tuple(lines))
    return BoothScreen("starting", "Welcome", ("Connecting to the office...",))
