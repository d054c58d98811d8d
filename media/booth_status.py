"""What the claimant's screen says: a pure function of the server's ``booth_state``.

States, in the order a visit goes through them:

* ``starting`` — connecting to the server, no visit yet
* ``queued`` — waiting in the office queue (position, the server's estimated wait)
* ``waiting_officer`` — at a desk, the officer's media link is not up yet
* ``connected`` — at a desk with media up, off air: "the officer is with another claimant",
  and the step the officer will ask for next
* ``on_air`` — the officer hears and sees this booth, and the booth plays the officer
* ``escalated`` — handed to a supervisor: "a supervisor will join you"
* ``supervisor`` — the supervisor who took the escalation is with the claimant
* ``finished`` — the visit has ended (outcome shown)

A supervisor barging into the on-air conversation (``supervisor_present``) is announced on
the ``on_air`` screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from lapak.signaling.messages import BoothState

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


def current_step_name(status: BoothState) -> str | None:
    """The name of the server's ``current_step`` (None when every step is decided)."""
    step = status.current_step
    return status.steps[step].name if step is not None and step < len(status.steps) else None


RECORDED_NOTICE = "This visit is recorded. / Kunjungan ini direkam."
"""Shown from routing while ``booth_state.recorded`` (before the officer can first speak)."""


def booth_screen(status: BoothState | None, media_connected: bool) -> BoothScreen:
    """The screen for the server's latest ``booth_state`` (None: none yet), with the
    recording notice on every screen of a recorded visit until it ends."""
    screen = _screen(status, media_connected)
    if status is not None and status.recorded and screen.state != "finished":
        return BoothScreen(screen.state, screen.title, (*screen.lines, RECORDED_NOTICE))
    return screen


def recording_notice_shown(screen: BoothScreen) -> bool:
    """Whether the claimant is being shown that the visit is recorded."""
    return RECORDED_NOTICE in screen.lines


def _screen(status: BoothState | None, media_connected: bool) -> BoothScreen:
    if status is None:
        return BoothScreen("starting", "Welcome", ("Connecting to the office...",))
    if status.state == "ended":
        outcome = status.outcome or "ended"
        return BoothScreen("finished", "Thank you", (f"Your visit has {outcome}.",))
    if status.state == "escalated":
        if status.supervisor_present:
            return BoothScreen(
                "supervisor",
                "Supervisor",
                (
                    f"A supervisor is with you, {status.name}.",
                    "Please stay in front of the camera.",
                ),
            )
        return BoothScreen(
            "escalated",
            "Please wait",
            (
                "Your visit was passed to a supervisor.",
                "A supervisor will join you shortly. Please stay in front of the camera.",
            ),
        )
    if status.state == "queued":
        position = status.position
        lines = [f"You are number {position} in the queue." if position else "You are queued."]
        if status.estimated_wait_s is not None:
            minutes = max(1.0, status.estimated_wait_s / 60.0)
            lines.append(f"Estimated wait: about {minutes:.0f} min.")
        return BoothScreen("queued", "Please wait", tuple(lines))
    step = current_step_name(status)
    ask = STEP_PROMPTS.get(step or "", step or "")
    if status.on_air:
        lines = [f"The officer is speaking with you, {status.name}."]
        if status.supervisor_present:
            lines.append("A supervisor has joined the conversation.")
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
