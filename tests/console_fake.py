"""A desk session without sockets, for the console's key tests.

``FakeDeskSession`` has the console-facing surface of ``lapak.media.desk_session.DeskSession``
(same constructor, model, requests, ``on_change``) and plays a small server behind it: it
records every request in ``calls``, answers it by the server's rules that the console shows
(a step must be pending to be decided, an outcome must match the steps), and feeds the
resulting ``Delta`` to the model, as the real session does with the server's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from conftest import wait_for

from lapak.media.desk_model import DeskModel
from lapak.media.desk_session import DeskChange
from lapak.signaling.client import RequestError
from lapak.signaling.messages import (
    Ack,
    Delta,
    OfficeFigures,
    Snapshot,
    StepView,
    Supervision,
    VisitView,
    Welcome,
)
from lapak.signaling.protocol import Role

if TYPE_CHECKING:
    from lapak.console.app import LapakConsole

STEPS = ("identity", "membership", "family_card", "bank_book", "termination_letter", "decision")
REASONS = ["document unreadable", "document missing", "wrong person"]


def visit_view(n: int, *, desk: str = "d1", started_at: float = 1000.0, **fields: Any) -> VisitView:
    """Booth ``booth-0n``'s visit in slot n, every step pending (``fields`` override)."""
    base: dict[str, Any] = {
        "visit": f"V{n}", "booth": f"booth-{n:02d}", "name": f"Claimant {n}",
        "membership_no": f"1000000000{n}", "claim_type": "JHT", "state": "active",
        "desk": desk, "slot": n, "started_at": started_at + n, "routed_at": None,
        "last_on_air_at": None, "on_air_since": None, "outcome": None, "current_step": 0,
        "steps": [StepView(s, "pending", None) for s in STEPS], "booth_present": True,
        "booth_away_since": None,
    }  # fmt: skip
    base.update(fields)
    return VisitView(**base)


def welcome(
    role: Role = "officer", desk: str | None = "d1", desks: list[str] | None = None
) -> Welcome:
    return Welcome(
        re=None,
        role=role,
        sub="ana" if role == "officer" else "sri",
        office="main",
        desk=desk,
        booth=None,
        session="s1",
        resumed=False,
        desks=desks or ["d1"],
        claim_types=["JHT"],
        reasons=REASONS,
        grace_s=30.0,
    )


def snapshot(visits: list[VisitView], *, desk: str = "d1", on_air: str | None = None,
             seq: int = 1, queue: int = 0) -> Snapshot:  # fmt: skip
    return msgspec.convert(
        {"type": "snapshot", "re": None, "desk": desk, "seq": seq, "state": {
            "desk": desk, "office": "main", "officer": "ana", "capacity": 6, "closed": False,
            "vacant": False, "on_air": on_air, "visits": [msgspec.to_builtins(v) for v in visits],
            "queue": queue}},
        Snapshot,
    )  # fmt: skip


def first_pending(steps: list[StepView]) -> int | None:
    return next((i for i, s in enumerate(steps) if s.status == "pending"), None)


class FakeDeskSession:
    """The console's session, with a scripted server behind it."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        engine: Any,
        watch: str | None = None,
        on_change: Callable[[DeskChange], None] | None = None,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        watch_all: bool = False,
        request_timeout: float = 10.0,
    ) -> None:
        self.engine = engine
        self.node = url  # the node it is on (DeskSession.node: moves on a cluster's moved)
        self.desk = watch
        self.on_change = on_change
        self.clock = clock
        self.read_only = read_only
        self.models: dict[str, DeskModel] = {}
        self._spare = DeskModel()
        self.welcome: Welcome | None = None
        self.ended: str | None = None
        self.end_detail: str | None = None
        self.connected = False
        self.last_failure: str | None = None
        self.calls: list[tuple[Any, ...]] = []
        self.hold: asyncio.Event | None = None  # requests wait for it when set
        self.stats: OfficeFigures | None = None
        self.start_as = welcome("supervisor" if read_only else "officer")
        self.refuse_start: RequestError | None = None
        self.closed = False
        self.server: dict[str, VisitView] = {}  # the server's truth, by visit

    # -- what the console reads --------------------------------------------------------

    @property
    def model(self) -> DeskModel:
        return self._spare if self.desk is None else self.models.setdefault(self.desk, DeskModel())

    @property
    def watcher(self) -> bool:
        return self.welcome is not None and self.welcome.role != "officer"

    def _changed(self, visits: frozenset[str] = frozenset(), desk: bool = False,
                 connection: bool = False) -> None:  # fmt: skip
        if self.on_change is not None:
            self.on_change(DeskChange(visits, desk, connection))

    # -- what a test does as the server ------------------------------------------------

    def load(self, message: Snapshot) -> None:
        """The server sends a snapshot (and from now on holds what it says)."""
        self.server.update({v.visit: v for v in message.state.visits})
        model = self.models.setdefault(message.desk, DeskModel())
        before = frozenset(model.visits)
        model.load_snapshot(message)
        if self.desk is None:
            self.desk = message.desk
        if message.desk == self.desk:
            self._changed(before | frozenset(model.visits), desk=True)

    def change(self, *views: VisitView, on_air: str | bool | None = False) -> None:
        """The server sends a delta with these views (``on_air``: the new one, if given)."""
        model = self.model
        air = model.on_air if on_air is False else on_air
        delta = Delta(desk=model.desk or "d1", seq=model.seq + 1, officer=model.officer,
                      on_air=air if isinstance(air, str) else None, closed=False, vacant=False,
                      capacity=model.capacity, queue=model.queue, visits=list(views))  # fmt: skip
        self.server.update({v.visit: v for v in views})
        before = model.on_air
        model.apply_delta(delta)
        self._changed(frozenset(v.visit for v in views), desk=model.on_air != before)

    def end(self, reason: str, detail: str) -> None:
        """The server ends the session for good."""
        self.ended, self.end_detail, self.connected = reason, detail, False
        self._changed(connection=True)

    def drop(self, failure: str | None = None) -> None:
        """The connection is lost (``failure``: and cannot be made again, yet)."""
        self.connected, self.last_failure = False, failure
        self._changed(connection=True)

    # -- the session's API -------------------------------------------------------------

    async def start(self, *, retry: bool = False) -> Welcome:
        self.calls.append(("start",))
        if self.refuse_start is not None:
            self.ended, self.end_detail = "refused", str(self.refuse_start)
            self._changed(connection=True)
            raise self.refuse_start
        self.welcome = self.start_as
        if self.welcome.role == "booth" or (self.welcome.role != "officer" and not self.read_only):
            self.end("wrong_role", f"a {self.welcome.role} token cannot run this desk")
            return self.welcome
        if self.desk is None:
            self.desk = self.welcome.desk or (self.welcome.desks or [None])[0]
        self.connected = True
        self._changed(desk=True, connection=True)
        return self.welcome

    async def close(self) -> None:
        self.closed = True
        if self.engine is not None:
            await self.engine.close()

    def reconcile(self) -> None:
        pass

    async def watch(self, desk: str) -> Snapshot:
        self.calls.append(("watch", desk))
        self.desk = desk
        self._changed(desk=True)
        model = self.model
        return snapshot([self.server[v] for v in model.visits], desk=desk, on_air=model.on_air)

    async def _answer(self, *call: Any) -> None:
        self.calls.append(call)
        if self.hold is not None:
            await self.hold.wait()

    async def focus(self, visit: str | None) -> Ack:
        await self._answer("focus", visit)
        model, now = self.model, self.clock()
        changed = []
        if model.on_air is not None and model.on_air in self.server:
            left = self.server[model.on_air]
            changed.append(msgspec.structs.replace(left, on_air_since=None, last_on_air_at=now))
        if visit is not None:
            changed.append(msgspec.structs.replace(self.server[visit], on_air_since=now))
        self.change(*changed, on_air=visit)
        return Ack(re=1, on_air=visit)

    async def zoom(self, visit: str | None) -> Ack:
        await self._answer("zoom", visit)
        return Ack(re=1)

    async def decide(self, visit: str, step: int, decision: str, reason: str | None = None) -> Ack:
        model = self.model
        model.mark_pending(visit, step, decision)
        self._changed(frozenset({visit}))
        await self._answer("decide", visit, step, decision, reason)
        view = self.server[visit]
        status = view.steps[step].status
        if (decision == "reopen") == (status == "pending"):
            code = "step_not_decided" if decision == "reopen" else "step_not_pending"
            error = RequestError(code, f"step {step} is {status}")
            model.refuse(visit, step, str(error))
            self._changed(frozenset({visit}))
            self.load(snapshot([self.server[v] for v in model.visits], desk=model.desk or "d1",
                               on_air=model.on_air, seq=model.seq))  # fmt: skip
            raise error
        new = {"approve": "approved", "reject": "rejected", "reopen": "pending"}[decision]
        steps = list(view.steps)
        kept = reason if decision == "reject" else None
        steps[step] = StepView(steps[step].name, new, kept)  # type: ignore[arg-type]  # str for the status literal
        model.acknowledged(visit, step)
        self._changed(frozenset({visit}))
        self.change(msgspec.structs.replace(view, steps=steps, current_step=first_pending(steps)))
        return Ack(re=1, visit=visit, step=step)

    async def end_visit(self, visit: str, outcome: str, note: str | None = None) -> Ack:
        await self._answer("end_visit", visit, outcome, note)
        view = self.server[visit]
        statuses = [s.status for s in view.steps]
        if (outcome == "completed" and statuses.count("approved") < len(statuses)) or (
            outcome == "rejected" and "rejected" not in statuses
        ):
            raise RequestError("outcome_mismatch", f"{outcome} does not match the steps")
        if outcome == "escalated":  # a hand-off: it leaves the desk, still open
            ended = msgspec.structs.replace(view, state="escalated", slot=None, desk=None)
        else:
            ended = msgspec.structs.replace(
                view, state="ended", outcome=outcome, slot=None, desk=None
            )
        on_air = None if self.model.on_air == visit else False
        self.change(ended, on_air=on_air)
        return Ack(re=1, visit=visit)

    async def snapshot_taken(self, visit: str, sha256: str, step: int | None = None) -> Ack:
        await self._answer("snapshot_taken", visit, sha256, step)
        return Ack(re=1, visit=visit)

    async def office_stats(self, office: str | None = None) -> Ack:
        await self._answer("office_stats", office)
        if self.stats is None:
            raise RequestError("forbidden", "no figures")
        return Ack.of_figures(1, self.stats)

    async def take_escalation(self, visit: str) -> Ack:
        """The scripted server's escalation queue lives in ``stats``: taking one marks it
        taken by ``sri`` (refused when it is another's, or not there)."""
        await self._answer("take_escalation", visit)
        stats = self.stats
        entry = next((e for e in (stats.escalations if stats else []) if e.visit == visit), None)
        if stats is None or entry is None:
            raise RequestError("not_escalated", f"visit {visit} is not escalated")
        if entry.taken_by not in (None, "sri"):
            raise RequestError("conflict", f"visit {visit} is taken by {entry.taken_by}")
        taken = msgspec.structs.replace(entry, taken_by="sri")
        escalations = [taken if e.visit == visit else e for e in stats.escalations]
        self.stats = msgspec.structs.replace(stats, escalations=escalations)
        self.server[visit] = entry.visit_view
        return Ack(re=1, visit=visit)

    async def send_sdp(self, visit: str, sdp_type: str, sdp: str, offer_id: str) -> None:
        await self._answer("sdp", visit, sdp_type)

    # -- the supervisor's voice (appended for coach and barge) ------------------------

    grants: frozenset[str] = frozenset({"monitor"})
    """The token's grants the scripted server checks ``supervise`` against."""
    supervising: str = "monitor"

    async def supervise(self, desk: str, mode: str) -> Ack:
        await self._answer("supervise", desk, mode)
        if mode not in self.grants:
            raise RequestError("forbidden", f"this token may not {mode}")
        self.supervising = mode
        if self.engine is not None:
            await self.engine.set_mode(mode)
        return Ack(re=1)

    # -- supervision of the officer's desk (appended for the officer's coach/barge line) -----

    @property
    def supervisions(self) -> dict[str, Supervision]:
        """As ``DeskSession.supervisions``: who coaches or barges this desk, by peer id."""
        held: dict[str, Supervision] = self.__dict__.setdefault("_supervisions", {})
        return held

    def supervision(self, sub: str, mode: str, *, peer: str | None = None) -> None:
        """The server sends ``supervision``: handled as ``DeskSession._on_supervision`` does
        (monitor: gone; coach or barge: kept), then a desk change."""
        message = msgspec.convert(
            {"type": "supervision", "desk": self.desk or "d1", "supervisor": peer or f"p-{sub}",
             "sub": sub, "mode": mode},
            Supervision,
        )  # fmt: skip
        if message.mode == "monitor":
            self.supervisions.pop(message.supervisor, None)
        else:
            self.supervisions[message.supervisor] = message
        self._changed(desk=True)


def fake(app: LapakConsole) -> FakeDeskSession:
    """The app's session, which the test made a ``FakeDeskSession`` (``session_factory``)."""
    session = app.session
    assert isinstance(session, FakeDeskSession)
    return session


async def ready(app: LapakConsole) -> None:
    """The fake session started and the server's snapshot of two booths (booth i in slot i)
    loaded: wait until the app's model (the officer's or the watched desk) holds both."""
    await wait_for(lambda: fake(app).connected, "the session started")
    fake(app).load(snapshot([visit_view(i) for i in range(1, 3)]))
    await wait_for(lambda: len(app.model.visits) == 2, "two visits on the desk")
