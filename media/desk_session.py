"""One client-side desk session, shared by the console, the supervisor view, the headless
desk and the focus bench.

It owns the signalling connection (``SignalClient``, with the one reconnect policy), the
desk models built from the server's snapshot and deltas, the decisions waiting for their
ack, and the resync after a gap or a refusal (``watch`` again: the answer is a snapshot).
It keeps an optional media engine in step with the model: a link per active visit, dropped
when the visit leaves, the officer's gates on the server's ``on_air``, offers held while a
booth is away. A UI hears what changed through ``on_change(DeskChange)`` and reads the model;
nothing the server sends is recomputed here.

On a cluster (issue 14) a ``*`` supervisor's session follows ``moved``: watching a desk, or
a command about a visit or desk, of an office another node owns moves the one connection
to that node (same token, a new welcome there), and the media engine's links go through it.

The session ends for good (``ended``) when another console takes the desk (``replaced``),
when the token is refused or expires (``refused``), or when the token's role cannot run
this session (``wrong_role``); it never reconnects after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from lapak.media.desk_model import DeskModel
from lapak.media.officer import OfficerMedia, SupervisorMedia
from lapak.media.peer import cancel_tasks
from lapak.signaling.client import Backoff, RequestError, SignalClient, WatchMoved
from lapak.signaling.messages import (
    Ack,
    Delta,
    SdpRelay,
    ServerMessage,
    Snapshot,
    Supervision,
    Welcome,
)
from lapak.signaling.protocol import (
    ClientMessage,
    Decide,
    Decision,
    EndVisit,
    Focus,
    LinkGradeValue,
    LinkQuality,
    OfficeStats,
    Outcome,
    Sdp,
    SdpType,
    SnapshotTaken,
    Supervise,
    SupervisionMode,
    TakeEscalation,
    Watch,
    Zoom,
)

log = logging.getLogger("lapak.desk_session")

Engine: TypeAlias = OfficerMedia | SupervisorMedia
EndReason: TypeAlias = Literal["replaced", "refused", "wrong_role"]
LOST = (ConnectionError, TimeoutError)
"""What a request raises when the connection is gone or the server did not answer in time."""


@dataclass(frozen=True)
class DeskChange:
    """What changed, so a UI redraws once per change: ``visits`` whose view (or pending
    decision) changed, ``desk`` for the desk's own fields (on air, queue, a whole snapshot),
    ``connection`` for connected/lost/ended. Bursts merge with ``|``."""

    visits: frozenset[str] = frozenset()
    desk: bool = False
    connection: bool = False

    def __or__(self, other: DeskChange) -> DeskChange:
        return DeskChange(
            self.visits | other.visits, self.desk or other.desk, self.connection or other.connection
        )


class DeskSession:
    """One desk followed from the server (an officer's own, or one a supervisor watches)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        engine: Engine | None,
        watch: str | None = None,
        on_change: Callable[[DeskChange], None] | None = None,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        watch_all: bool = False,
        request_timeout: float = 10.0,
        policy: Backoff | None = None,
        token_source: Callable[[], str] | None = None,
        entries: Sequence[str] = (),
    ) -> None:
        """``entries``: a cluster's other nodes, tried when the one in use is down.
        ``watch``: the desk a supervisor or admin follows (default: the first of its
        office). ``read_only``: the session only watches (an officer token is still let in;
        without it, only an officer token may run the session). ``watch_all``: watch every
        desk of the office too (the supervisor's overview counts them)."""
        self.client = SignalClient(
            url,
            token,
            self._on_message,
            on_reconnect=self._on_reconnect,
            on_connection=self._on_connection,
            policy=policy,
            request_timeout=request_timeout,
            token_source=token_source,  # refreshed before it expires (SignalClient)
            entries=entries,
        )
        self.engine = engine
        if engine is not None:
            engine.attach(self.send_sdp)
        if isinstance(engine, SupervisorMedia):
            engine.attach_voice(self._send_voice_sdp)
        elif engine is not None:
            engine.on_grade = self.link_graded  # an officer's links (poor_link alerts)
        self.reported_grades: dict[str, LinkGradeValue] = {}
        """The grade last reported per seated visit (``link_quality`` is sent on change)."""
        self.supervising: SupervisionMode = "monitor"
        """This supervisor's part in ``supervised_desk`` as the server last accepted it."""
        self.supervised_desk: str | None = None
        self.supervisions: dict[str, Supervision] = {}
        """An officer's desk: supervisors coaching or barging it now, by their peer id."""
        self.desk: str | None = watch
        self.read_only = read_only
        self.watch_all = watch_all
        self.on_change = on_change
        self.clock = clock
        self.models: dict[str, DeskModel] = {}
        self.welcome: Welcome | None = None
        self.ended: EndReason | None = None
        self.end_detail: str | None = None
        self._spare = DeskModel()
        self._loaded = asyncio.Event()
        self._ensuring: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.moves = 0
        """How many times the session moved to another node (a cluster's ``moved``)."""
        self._back_desk: str | None = None  # the desk to go back to when a move fails
        self.move_failure: str | None = None
        """Why the last move to another node failed (None after a move that worked)."""

    # -- state -------------------------------------------------------------------------------

    @property
    def model(self) -> DeskModel:
        """The model of the desk followed now (an empty one before the first snapshot)."""
        return self._spare if self.desk is None else self.models.setdefault(self.desk, DeskModel())

    @property
    def connected(self) -> bool:
        return self.client.connected.is_set()

    @property
    def last_failure(self) -> str | None:
        """Why the last connection attempt failed (None once connected)."""
        return self.client.last_failure

    @property
    def node(self) -> str:
        """The node this session is connected to (or tries): the entry, or where it moved."""
        return self.client.url

    @property
    def watcher(self) -> bool:
        """Whether this session watches desks (supervisor, admin) rather than runs one."""
        return self.welcome is not None and self.welcome.role != "officer"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, retry: bool = False) -> Welcome:
        """Connect, hello, watch (supervisors) and wait for the first snapshot.

        ``retry``: a server not up yet is tried again by the back-off policy. A refused
        token raises ``RequestError`` (``ended`` says ``refused``); a token of the wrong
        role returns with ``ended == "wrong_role"`` and the connection closed.
        """
        try:
            welcome = await self.client.connect(retry=retry)
        except RequestError:
            self._take_end()
            raise
        self.welcome = welcome
        if welcome.role == "booth" or (welcome.role != "officer" and not self.read_only):
            self._end("wrong_role", f"a {welcome.role} token cannot run this desk")
            await self.client.close()
            return welcome
        if self.watcher:
            await self._watch_desks(welcome)
        else:
            self.desk = welcome.desk
            await self._first_snapshot()
        return welcome

    async def close(self) -> None:
        """Close the connection and the media engine (the session owns both)."""
        await cancel_tasks(self._tasks)
        if self.engine is not None:
            await self.engine.close()
        await self.client.close()

    async def _first_snapshot(self) -> None:
        async with asyncio.timeout(self.client.request_timeout):
            while not self.model.synced:
                self._loaded.clear()
                await self._loaded.wait()

    async def _watch_desks(self, welcome: Welcome, *, follow: bool = True) -> None:
        """Watch the chosen desk (default the office's first), then the others if asked.
        ``follow``: a desk served by another node moves the session there; without it
        (after a move for a command) a desk served elsewhere gives way to the first desk
        watched here."""
        if self.desk is None:
            self.desk = welcome.desks[0] if welcome.desks else None
        if self.desk is None:
            log.info("event=no_desk office=%s", welcome.office)
            return
        moves, elsewhere = self.moves, False
        try:
            await self._watch(self.desk, follow=follow)
        except WatchMoved as exc:
            elsewhere = True
            log.info("event=desk_elsewhere desk=%s url=%s", self.desk, exc.moved.url)
        except RequestError as exc:
            if follow:
                raise
            elsewhere = True  # e.g. its office between nodes: a desk served here instead
            log.info("event=desk_not_here desk=%s error=%s", self.desk, exc)
        if self.watch_all and self.moves == moves:  # a move watched the others itself
            await self._watch_others()
        if elsewhere:
            here = [d for d, m in sorted(self.models.items()) if m.synced]
            if here:
                self.desk = here[0]
                self.reconcile()
                self._changed(desk=True)

    async def _watch_others(self) -> None:
        """Every other desk of the welcome, as far as this node serves it (the overview)."""
        welcome = self.client.welcome
        for other in welcome.desks if welcome is not None else []:
            if other != self.desk:
                try:
                    await self._watch(other)
                except RequestError as exc:
                    log.info("event=watch_refused desk=%s error=%s", other, exc)

    def _take_end(self) -> None:
        if self.client.ended is not None and self.ended is None:
            self._end(self.client.ended, self.client.end_detail or self.client.ended)

    def _end(self, reason: EndReason, detail: str) -> None:
        self.ended, self.end_detail = reason, detail
        log.warning("event=desk_session_ended reason=%s detail=%r", reason, detail)
        self._changed(connection=True)

    def _on_connection(self) -> None:
        self._take_end()
        if not self.connected:
            self._supervisions_lost()
        self._changed(connection=True)

    async def _on_reconnect(self, welcome: Welcome) -> None:
        """Resumed: an officer gets its desk's snapshot by itself; a watcher asks again.
        A closed connection ended any coach or barge (the server's rule): back to monitor."""
        self.welcome = welcome
        self.reported_grades.clear()  # the server may have restarted: report afresh
        await self._voice_ended()
        if self.watcher:
            try:
                await self._watch_desks(welcome)
            except (RequestError, *LOST) as exc:  # e.g. the desk's node is down: shown
                self.move_failure = f"{self.desk}: {exc}"
                log.warning("event=rewatch_failed desk=%s error=%s", self.desk, exc)
                self._changed(connection=True)

    # -- requests ----------------------------------------------------------------------------

    async def watch(self, desk: str) -> Snapshot:
        """Follow ``desk`` from now on (its snapshot replaces what was known of it). A desk
        another node serves moves the session there first; when that fails the session
        stays where it was, on the desk it followed, and the failure is raised."""
        before, self.desk = self.desk, desk
        self._back_desk = before
        self.reconcile()
        self._changed(desk=True)
        try:
            return await self._watch(desk, follow=True)
        except (RequestError, *LOST):
            if self.desk == desk:
                self.desk = before
                self.reconcile()
                self._changed(desk=True)
            raise
        finally:
            self._back_desk = None

    async def resync(self) -> Snapshot | None:
        """Ask for the followed desk as it is (after a refusal: our copy was wrong)."""
        if self.desk is None:
            return None
        return await self._watch(self.desk)

    def link_graded(self, visit: str, grade: LinkGradeValue) -> None:
        """A new grade of a seated visit's link: reported (``link_quality``) when it differs
        from the last one reported, so the supervisors' ``poor_link`` alert can follow it.
        Telemetry: a refusal (the visit just left) or a lost connection is only logged."""
        if self.watcher or self.read_only or self.reported_grades.get(visit) == grade:
            return
        if visit not in self.model.visits:
            return
        self.reported_grades[visit] = grade
        self._spawn(self._report_grade(visit, grade))

    async def _report_grade(self, visit: str, grade: LinkGradeValue) -> None:
        try:
            await self.client.request(LinkQuality(visit=visit, grade=grade))
        except (RequestError, *LOST) as exc:
            self.reported_grades.pop(visit, None)  # sent again on the next reading
            log.info("event=link_quality_unsent visit=%s grade=%s error=%s", visit, grade, exc)

    async def _watch(self, desk: str, *, follow: bool = False) -> Snapshot:
        """``watch``; ``follow``: answered ``moved``, the session moves and watches there."""
        try:
            return await self.client.request(Watch(desk=desk))
        except WatchMoved as exc:
            if not follow:
                raise
            await self._move(exc.moved.url)
        snapshot = await self.client.request(Watch(desk=desk))
        if self.watch_all:
            await self._watch_others()
        return snapshot

    async def _ask(self, message: ClientMessage) -> Ack:
        """A command; answered ``moved`` (a ``*`` watcher's command about another node's
        office), the session moves to that node, watches there and sends it again."""
        try:
            return await self.client.request(message)
        except WatchMoved as exc:
            await self._move(exc.moved.url)
        welcome = self.client.welcome
        if self.watcher and welcome is not None:
            await self._watch_desks(welcome, follow=False)
        return await self.client.request(message)

    async def _move(self, url: str) -> None:
        """Connect to ``url`` instead (``SignalClient.move_to``): what the old node served
        is forgotten (models, coach/barge, the engine's links, which the next snapshot
        rebuilds through the new node). When ``url`` cannot be reached the session is back
        where it was, watching again, and the error is raised (``move_failure`` says it)."""
        log.info("event=session_moving from=%s to=%s", self.client.url, url)
        await self._voice_ended()
        try:
            welcome = await self.client.move_to(url)
        except (RequestError, *LOST) as exc:
            self.move_failure = str(exc)
            self.models.clear()  # a new connection where it was: watched again below
            if self._back_desk is not None:
                self.desk = self._back_desk
            back = self.client.welcome
            if self.watcher and back is not None and self.connected:
                with contextlib.suppress(RequestError, *LOST):
                    await self._watch_desks(back, follow=False)
            self._changed(desk=True, connection=True)
            raise
        self.moves += 1
        self.move_failure = None
        self.welcome = welcome
        self.models.clear()
        self.reported_grades.clear()
        engine = self.engine
        if engine is not None:
            resolving = engine.resolving if isinstance(engine, SupervisorMedia) else set()
            for visit in sorted(resolving):
                await engine.unresolve(visit)  # type: ignore[union-attr]
            for visit in sorted(engine.links):
                await engine.drop(visit)
        self._changed(desk=True, connection=True)

    async def focus(self, visit: str | None) -> Ack:
        """Put a visit on air (None: nobody); the gates move on the server's delta."""
        return await self.client.request(Focus(visit=visit))

    async def zoom(self, visit: str | None) -> Ack:
        """Look closely at a visit (None: at none): its booth sends full video while zoomed."""
        return await self.client.request(Zoom(visit=visit))

    async def decide(
        self, visit: str, step: int, decision: Decision, reason: str | None = None
    ) -> Ack:
        """Shown as sending at once, as decided only on the ack. Refused: the model keeps
        the server's message and is resynced; lost: refused with why (not resynced: the
        snapshot after the reconnect is the truth)."""
        model = self.model
        model.mark_pending(visit, step, decision)
        self._changed(visits=frozenset({visit}))
        try:
            ack = await self._ask(Decide(visit=visit, step=step, decision=decision, reason=reason))
        except RequestError as exc:
            model.refuse(visit, step, str(exc))
            self._changed(visits=frozenset({visit}))
            await self._resync_quietly()
            raise
        except LOST as exc:
            model.refuse(visit, step, str(exc) or type(exc).__name__)
            self._changed(visits=frozenset({visit}))
            raise
        model.acknowledged(visit, step)
        self._changed(visits=frozenset({visit}))
        return ack

    async def end_visit(self, visit: str, outcome: Outcome, note: str | None = None) -> Ack:
        """End a visit; refused: resync (the desk was not as we thought)."""
        try:
            return await self._ask(EndVisit(visit=visit, outcome=outcome, note=note))
        except RequestError:
            await self._resync_quietly()
            raise

    async def snapshot_taken(self, visit: str, sha256: str, step: int | None = None) -> Ack:
        """Record a saved frame's SHA-256 in the visit's audit trail."""
        return await self.client.request(SnapshotTaken(visit=visit, sha256=sha256, step=step))

    async def office_stats(self, office: str | None = None) -> Ack:
        """The office overview (``Ack.figures()``)."""
        return await self.client.request(OfficeStats(office=office), timeout=3)

    async def take_escalation(self, visit: str) -> Ack:
        """A supervisor with grant ``resolve`` takes an escalated visit (then ``decide`` and
        ``end_visit`` work on it as on a seated one)."""
        return await self._ask(TakeEscalation(visit=visit))

    async def send_sdp(self, visit: str, sdp_type: SdpType, sdp: str, offer_id: str) -> None:
        """An offer of the media engine; a refusal raises ``RequestError`` back to it
        (``not_connected``: the booth is away, it waits for the booth to come back)."""
        await self.client.request(Sdp(visit=visit, sdp_type=sdp_type, sdp=sdp, offer_id=offer_id))

    async def supervise(self, desk: str, mode: SupervisionMode) -> Ack:
        """Listen only, coach or barge ``desk`` (the server checks the token's grants); on
        the ack the supervisor's voice goes where the mode says."""
        ack = await self._ask(Supervise(desk=desk, mode=mode))
        self.supervising = mode
        self.supervised_desk = None if mode == "monitor" else desk
        if isinstance(self.engine, SupervisorMedia):
            await self.engine.set_mode(mode)
        return ack

    async def _voice_ended(self) -> None:
        if self.supervising != "monitor":
            log.info(
                "event=supervision_lost desk=%s mode=%s", self.supervised_desk, self.supervising
            )
        self.supervising, self.supervised_desk = "monitor", None
        if isinstance(self.engine, SupervisorMedia) and self.engine.mode != "monitor":
            await self.engine.set_mode("monitor")

    def _supervisions_lost(self) -> None:
        """The officer's connection closed: who supervises is unknown until the server says
        again (it sends ``supervision`` right after the new ``hello`` while one is still on),
        so the console stops showing it now. Cleared at the loss, not on the reconnect: that
        ``supervision`` may be read before ``on_reconnect`` runs."""
        lost, self.supervisions = list(self.supervisions), {}
        if lost and isinstance(self.engine, OfficerMedia):
            engine = self.engine

            async def silence() -> None:
                for peer in lost:
                    await engine.supervisors.set_mode(peer, "monitor")

            self._spawn(silence())
        if lost:
            self._changed(desk=True)

    async def _send_voice_sdp(self, sdp_type: SdpType, sdp: str, offer_id: str) -> None:
        """The supervisor's voice offer to the officer of the desk it coaches or barges."""
        desk = self.supervised_desk
        if desk is None:
            raise ConnectionError("not coaching or barging a desk")
        await self.client.request(Sdp(desk=desk, sdp_type=sdp_type, sdp=sdp, offer_id=offer_id))

    async def _on_supervision(self, message: Supervision) -> None:
        """A supervisor coaches, barges or stopped (monitor) on this officer's desk."""
        if message.mode == "monitor":
            self.supervisions.pop(message.supervisor, None)
        else:
            self.supervisions[message.supervisor] = message
        if isinstance(self.engine, OfficerMedia):
            await self.engine.supervisors.set_mode(message.supervisor, message.mode)
        self._changed(desk=True)

    async def _on_desk_sdp(self, message: SdpRelay) -> None:
        """Between a coaching or barging supervisor and this desk's officer."""
        engine, peer = self.engine, message.peer
        if not isinstance(peer, str) or not isinstance(message.desk, str):
            return
        if isinstance(engine, OfficerMedia) and message.sdp_type == "offer":
            answer = await engine.supervisors.answer(peer, message.sdp, message.offer_id)
            if answer is None:
                return
            try:
                await self.client.request(
                    Sdp(desk=message.desk, sdp_type="answer", sdp=answer,
                        offer_id=message.offer_id, peer=peer)
                )  # fmt: skip
            except (RequestError, *LOST) as exc:  # stale or ended meanwhile: theirs to retry
                log.info("event=supervisor_answer_not_sent peer=%s error=%s", peer, exc)
        elif isinstance(engine, SupervisorMedia) and message.sdp_type == "answer":
            await engine.coach.on_answer(message.sdp, message.offer_id)

    async def _resync_quietly(self) -> None:
        try:
            await self.resync()
        except (RequestError, *LOST) as exc:
            log.warning("event=resync_failed desk=%s error=%s", self.desk, exc)

    # -- what the server says ----------------------------------------------------------------

    async def _on_message(self, message: ServerMessage) -> None:
        if isinstance(message, Snapshot):
            self._on_snapshot(message)
        elif isinstance(message, Delta):
            self._on_delta(message)
        elif isinstance(message, Supervision):
            await self._on_supervision(message)
        elif isinstance(message, SdpRelay) and isinstance(message.desk, str):
            await self._on_desk_sdp(message)
        elif (
            isinstance(message, SdpRelay)
            and message.sdp_type == "answer"
            and self.engine is not None
        ):
            await self.engine.on_answer(message.visit, message.sdp, message.offer_id)

    def _on_snapshot(self, message: Snapshot) -> None:
        model = self.models.setdefault(message.desk, DeskModel())
        before = frozenset(model.visits)
        model.load_snapshot(message)
        if self.desk is None:
            self.desk = message.desk
        self._loaded.set()
        if message.desk == self.desk:
            self.reconcile()
            self._changed(visits=before | frozenset(model.visits), desk=True)

    def _on_delta(self, message: Delta) -> None:
        model = self.models.get(message.desk)
        if model is None:
            return
        before = _desk_fields(model)
        if not model.apply_delta(message):
            log.warning("event=seq_gap desk=%s seq=%d", message.desk, message.seq)
            self._spawn(self._resync_desk(message.desk))
            return
        if message.desk == self.desk:
            self.reconcile()
            changed = frozenset(v.visit for v in message.visits)
            self._changed(visits=changed, desk=_desk_fields(model) != before)

    async def _resync_desk(self, desk: str) -> None:
        try:
            await self._watch(desk)
        except (RequestError, *LOST) as exc:
            log.warning("event=resync_failed desk=%s error=%s", desk, exc)

    def _changed(
        self, visits: frozenset[str] = frozenset(), desk: bool = False, connection: bool = False
    ) -> None:
        if self.on_change is not None:
            self.on_change(DeskChange(visits, desk, connection))

    # -- media -------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Make the engine's links match the followed desk: a link per active visit, none
        for a visit that left, gates on the server's ``on_air``, offers held while away."""
        engine = self.engine
        if engine is None:
            return
        model = self.model
        welcome = self.client.welcome
        engine.ice_servers = welcome.ice_servers if welcome is not None else []
        if isinstance(engine, OfficerMedia | SupervisorMedia):
            engine.set_on_air(model.on_air)  # a supervisor's barge voice follows the air
        for visit, view in model.visits.items():
            engine.set_booth_present(visit, view.booth_present)
            if engine.needs_offer(visit):
                self._ensure(engine, visit)
        resolving = engine.resolving if isinstance(engine, SupervisorMedia) else set()
        for visit in set(engine.links) - set(model.visits) - resolving:
            self._spawn(engine.drop(visit))
        for visit in set(self.reported_grades) - set(model.visits):
            del self.reported_grades[visit]  # seated again later: reported afresh

    def _ensure(self, engine: Engine, visit: str) -> None:
        """One ``ensure`` per visit at a time: a snapshot and its deltas in one loop turn
        all see the link missing until the first ``ensure`` has run."""
        if visit in self._ensuring:
            return
        self._ensuring.add(visit)

        async def ensure() -> None:
            try:
                await engine.ensure(visit)
            finally:
                self._ensuring.discard(visit)

        self._spawn(ensure())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _desk_fields(model: DeskModel) -> tuple[object, ...]:
    return (model.on_air, model.queue, model.capacity, model.closed, model.vacant, model.officer)
