"""Load generator for bench/signaling.py and bench/cluster.py: officers and booths over
python-websockets, and the harness both benches share (load processes, servers, phases).

One worker process drives whole offices (their officers and booths) so that every visit it
starts is routed to a desk it also drives. The coordinator talks to each worker through a
``multiprocessing`` pipe: ``storm`` (connect, hello, snapshot / booth_state), ``load`` (paced
step decisions), ``close``. The same worker runs against the real server (``mode="real"``)
and against a bare echo server (``mode="echo"``, the floor: every request's echo is its ack).

Each office may name the URL of the node that owns it (``Office.url``, a cluster); every
acknowledged decision is reported as (visit, step) so that a bench can check the store.

Also the echo server itself (``echo_main``), so that the floor runs in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import itertools
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.frames import DATA_OPCODES, Frame

from lapak.media.desk_model import DeskModel
from lapak.signaling.keepalive import SpreadClientConnection, SpreadServerConnection
from lapak.signaling.messages import (
    Ack,
    BoothState,
    Delta,
    Error,
    SdpRelay,
    ServerMessage,
    Snapshot,
    VisitView,
    Welcome,
    decode_server,
)

STEPS = 6  # the JHT workflow: identity, membership, family card, bank book, letter, decision
WIRE_MAX_SIZE = 1024 * 1024
TICK_S = 0.002
ACK_GRACE_S = 10.0
# what a client sends (its echo comes back in the floor); anything else the floor sends is an
# extra frame, a server message taken from the real phase (see ``Extras``)
REQUEST_TYPES = frozenset({"hello", "start_visit", "decide", "end_visit", "watch"})
SAMPLE_FRAMES = 1000  # extra frames kept per load process (reservoir) for the fair floor

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (2,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int | str = "self") -> float:
    """User+system CPU seconds of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- plan ---------------------------------------------------------------------------------


@dataclass
class Office:
    name: str
    desks: list[str]
    booths: list[str]
    url: str | None = None  # the node that owns it (a cluster); None: the worker's URL


def make_offices(clients: int, desks_per_office: int = 10, capacity: int = 6) -> list[Office]:
    """Spread ``clients`` over offices: one officer per desk, ``capacity`` booths per desk.

    Clients left over after whole desks become extra booths, whose visits wait in the
    office queue until a slot frees.
    """
    desks = max(1, clients // (capacity + 1))
    booths = clients - desks
    offices: list[Office] = []
    for first in range(0, desks, desks_per_office):
        n = min(desks_per_office, desks - first)
        name = f"o{len(offices):03d}"
        offices.append(Office(name, [f"{name}-d{i:02d}" for i in range(n)], []))
    booth_no = 0
    while booth_no < booths:  # fill desk slots office by office, then spread the rest
        for office in offices:
            share = len(office.desks) * capacity if booth_no < desks * capacity else 1
            for _ in range(min(share, booths - booth_no)):
                office.booths.append(f"{office.name}-b{len(office.booths):03d}")
                booth_no += 1
    return offices


# -- clients ------------------------------------------------------------------------------


class ArrivalConnection(SpreadClientConnection):
    """A load client's connection that notes when each message's bytes reached it: the
    moment the loop handed them over (``data_received``), before the client decodes that
    message and those ahead of it. A burst of frames (one commit's acks and deltas) is then
    timed at its arrival, not after the load process has worked through it: the load
    process's own lag, which a real client (a process of its own) does not have, is split
    out of the ack's time (``decide_arrival``). Both phases use it alike."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: deque[float] = deque()  # one per complete data message, in order
        self._received_at = 0.0

    def data_received(self, data: bytes) -> None:
        self._received_at = time.perf_counter()
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode in DATA_OPCODES and event.fin:
            self.arrivals.append(self._received_at)
        super().process_event(event)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {
            "decide": [], "decide_arrival": [], "end_visit": [], "start_visit": [], "ready": [],
        }
    )  # fmt: skip
    decide_at: list[float] = field(default_factory=list)  # wall clock of each decide's ack
    acked: list[tuple[str, int]] = field(default_factory=list)  # (visit, step) of every ack
    errors: Counter[str] = field(default_factory=Counter)
    messages_in: int = 0
    seq_gaps: int = 0
    # the recorded window only: what the clients received and sent, for the fair floor
    window_in: int = 0
    window_bytes_in: int = 0
    window_answers: int = 0
    window_requests: int = 0
    extra_samples: list[str] = field(default_factory=list)
    extra_seen: int = 0


@dataclass
class LocalVisit:
    id: str
    next_step: int
    inflight: bool = False
    ending: bool = False
    gone: bool = False


class Client:
    """One websocket client: an officer (decides steps) or a booth (starts visits)."""

    def __init__(
        self, worker: Worker, role: str, name: str, office: str, token: str, url: str | None
    ) -> None:
        self.worker = worker
        self.role = role
        self.name = name
        self.office = office
        self.token = token
        self.url = url or worker.url
        self.ws: ArrivalConnection | None = None
        self.arrived = 0.0  # when the frame being handled reached the connection
        self.ids = itertools.count(1)
        self.pending: dict[int, tuple[str, float, str | None]] = {}
        self.ready = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.closing = False
        # officer: its desk as the server says it (snapshot + deltas), and what it decides
        self.desk = DeskModel()
        self.scratch: DeskModel | None = None  # the fair floor: extra deltas applied here
        self.visits: dict[str, LocalVisit] = {}
        # booth
        self.visit: str | None = None
        self.starting = False
        self.visits_started = 0
        self.start_acked = False

    @property
    def stats(self) -> Stats:
        return self.worker.stats

    async def start(self) -> None:
        """Connect, hello; an officer is ready at its snapshot, a booth at its booth_state."""
        started = time.perf_counter()
        self.ws = await connect(
            self.url, compression=None, max_size=WIRE_MAX_SIZE, open_timeout=60,
            create_connection=ArrivalConnection,  # pings at its own phase, as SignalClient
        )  # fmt: skip
        assert isinstance(self.ws, ArrivalConnection)
        self.reader = asyncio.create_task(self._read(), name=f"read-{self.name}")
        await self.request("hello", {"type": "hello", "token": self.token})
        if self.role == "booth":
            await self.ready.wait()  # welcome (or its echo)
            self.ready.clear()
            await self.start_visit()
        await self.ready.wait()
        self.stats.latencies["ready"].append(time.perf_counter() - started)
        if self.role == "officer" and self.worker.mode == "echo":
            for k in range(self.worker.booths_per_desk):
                visit = LocalVisit(f"{self.name}-v{k}", 0)
                self.visits[visit.id] = visit
                self.worker.ready_visits.append((self, visit))

    async def request(self, kind: str, message: dict[str, Any], ref: str | None = None) -> None:
        assert self.ws is not None
        req_id = next(self.ids)
        message["id"] = req_id
        text = _encode(message).decode()
        self.pending[req_id] = (kind, time.perf_counter(), ref)
        if self.worker.recording:
            self.stats.window_requests += 1
        if kind == "decide":
            self.worker.inflight += 1
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            if self.pending.pop(req_id, None) is not None and kind == "decide":
                self.worker.answered_decide()
            if not self.closing:
                self.stats.errors[f"send_closed:{kind}"] += 1

    async def start_visit(self) -> None:
        self.starting = True
        self.visits_started += 1
        claimant = {
            "name": f"Claimant {self.name} {self.visits_started}",
            "membership_no": f"{abs(hash(self.name)) % 10**11:011d}",
            "claim_type": "JHT",
        }
        await self.request("start_visit", {"type": "start_visit", "claimant": claimant})

    async def decide(self, visit: LocalVisit) -> None:
        visit.inflight = True
        message = {"type": "decide", "visit": visit.id, "step": visit.next_step}
        message["decision"] = "approve"
        await self.request("decide", message, visit.id)

    async def end_visit(self, visit: LocalVisit) -> None:
        visit.ending = True
        message = {"type": "end_visit", "visit": visit.id, "outcome": "completed", "note": None}
        await self.request("end_visit", message, visit.id)

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader

    # -- inbound ---------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            arrivals = self.ws.arrivals
            async for frame in self.ws:
                self.arrived = arrivals.popleft() if arrivals else time.perf_counter()
                stats = self.stats
                stats.messages_in += 1
                recording = self.worker.recording
                if recording:
                    stats.window_in += 1
                    stats.window_bytes_in += len(frame)
                if self.worker.mode == "echo":
                    if _frame_type(frame) in REQUEST_TYPES:
                        self._on_echo(_decode(frame))  # its own requests come back: not typed
                    else:
                        self._on_extra(decode_server(frame))
                else:
                    answers = stats.window_answers
                    self._on_message(decode_server(frame))
                    if recording and stats.window_answers == answers:
                        self._sample_extra(frame)
        except ConnectionClosed as exc:
            if not self.closing:
                self.stats.errors[f"closed:{exc.rcvd.code if exc.rcvd else 'none'}"] += 1
        except Exception as exc:  # a bug here must show up as an error, not a hang
            self.stats.errors[f"client_bug:{type(exc).__name__}"] += 1
            raise

    def _answered(self, re: int | None) -> tuple[str, float, str | None] | None:
        entry = self.pending.pop(re, None) if re is not None else None
        if entry is not None:
            if self.worker.recording:
                self.stats.window_answers += 1
            kind, sent, _ = entry
            if kind in self.stats.latencies and self.worker.recording:
                self.stats.latencies[kind].append(time.perf_counter() - sent)
                if kind == "decide":
                    self.stats.decide_at.append(time.time())
                    self.stats.latencies["decide_arrival"].append(self.arrived - sent)
            if kind == "decide":
                self.worker.answered_decide()
                if self.worker.recording:
                    self.worker.acked_in_window += 1
        return entry

    def _on_message(self, msg: ServerMessage) -> None:
        if isinstance(msg, Error):
            entry = self._answered(msg.re)
            what = entry[0] if entry else "unsolicited"
            self.stats.errors[f"{what}:{msg.code}"] += 1
            if entry and entry[2] in self.visits:  # drop it; the next delta brings it back
                self.visits.pop(entry[2]).gone = True
            if entry and entry[0] == "start_visit":
                self.starting = False
            return
        if isinstance(msg, Ack | Welcome):
            entry = self._answered(msg.re)
            if entry is None:
                self.stats.errors[f"unexpected_{msg.__struct_config__.tag}"] += 1
                return
            if isinstance(msg, Welcome):
                if self.role == "booth":
                    self.ready.set()
            elif entry[0] == "decide":
                if isinstance(msg.step, int) and entry[2] is not None:
                    self.stats.acked.append((entry[2], msg.step))  # must be in the store
                visit = self.visits.get(entry[2] or "")
                if visit is not None:
                    visit.inflight = False
                    step = msg.step if isinstance(msg.step, int) else -1
                    visit.next_step = max(visit.next_step, step + 1)
                    self._next(visit)
            elif entry[0] == "end_visit":
                visit = self.visits.pop(entry[2] or "", None)
                if visit is not None:
                    visit.gone = True
            elif entry[0] == "start_visit":
                self.visit = msg.visit if isinstance(msg.visit, str) else None
                self.start_acked = True
            return
        if isinstance(msg, Snapshot):
            self._answered(msg.re)  # the answer to a resync's watch, if it is one
            self.desk.load_snapshot(msg)
            self._merge(msg.state.visits)
            self.ready.set()
        elif isinstance(msg, Delta):
            if not self.desk.apply_delta(msg):
                self.stats.seq_gaps += 1
                self.stats.errors["seq_gap"] += 1
                self.worker.spawn(self.request("watch", {"type": "watch", "desk": msg.desk}))
                return
            self._merge(msg.visits)
        elif isinstance(msg, BoothState):
            if msg.visit != self.visit:
                return
            if self.start_acked:
                self.ready.set()
            if msg.state == "ended" and self.starting is False and not self.closing:
                self.starting = True
                self.worker.spawn(self.start_visit())
            elif msg.state != "ended":
                self.starting = False
        elif not isinstance(msg, SdpRelay):
            self.stats.errors[f"unexpected_{msg.__struct_config__.tag}"] += 1

    def _merge(self, views: list[VisitView]) -> None:
        """Follow the visits a snapshot or delta listed, as the desk model now has them."""
        for view in views:
            vid = view.visit
            local = self.visits.get(vid)
            if vid not in self.desk.visits:
                if local is not None and not local.ending:
                    self.visits.pop(vid).gone = True
                continue
            current = view.current_step
            step = STEPS if current is None else current
            if local is None:
                local = LocalVisit(vid, step)
                self.visits[vid] = local
                self._next(local)
            else:
                local.next_step = max(local.next_step, step)

    def _next(self, visit: LocalVisit) -> None:
        if visit.gone or visit.inflight or visit.ending:
            return
        if visit.next_step >= STEPS:
            self.worker.spawn(self.end_visit(visit))
        else:
            self.worker.ready(self, visit)

    def _sample_extra(self, frame: str | bytes) -> None:
        """Keep a uniform sample of the frames that answered nothing (deltas, booth
        states): the fair floor sends the same mix of sizes."""
        stats = self.stats
        stats.extra_seen += 1
        text = frame if isinstance(frame, str) else frame.decode()
        if len(stats.extra_samples) < SAMPLE_FRAMES:
            stats.extra_samples.append(text)
        else:
            k = random.randrange(stats.extra_seen)
            if k < SAMPLE_FRAMES:
                stats.extra_samples[k] = text

    def _on_extra(self, msg: ServerMessage) -> None:
        """The fair floor: an extra frame is decoded as the real one was (typed), and a
        delta applied to a desk model, as an officer's client does."""
        if isinstance(msg, Delta):
            if self.scratch is None:
                self.scratch = DeskModel()
            desk = self.scratch
            desk.synced, desk.desk, desk.seq = True, msg.desk, msg.seq - 1
            desk.apply_delta(msg)
            desk.departed.clear()

    def _on_echo(self, msg: dict[str, Any]) -> None:
        """The floor: the echo of a request is its ack; mirror the real message pattern."""
        entry = self._answered(msg.get("id"))
        if entry is None:
            self.stats.errors["unexpected_echo"] += 1
            return
        kind, _, ref = entry
        if kind in ("hello", "start_visit"):
            self.ready.set()
        if kind == "decide":
            visit = self.visits[ref or ""]
            visit.inflight = False
            visit.next_step += 1
            self._next(visit)
        elif kind == "end_visit":
            visit = self.visits[ref or ""]
            booth = self.worker.booth_for.get(visit.id)
            if booth is not None:  # the visit's booth starts the next one, as for real
                self.worker.restarts[booth.name] = visit
                self.worker.spawn(booth.start_visit())
            else:
                self._restart(visit)
        elif kind == "start_visit" and self.role == "booth":
            visit = self.worker.restarts.pop(self.name, None)
            if visit is not None:
                owner = self.worker.officer_of[visit.id]
                owner._restart(visit)

    def _restart(self, visit: LocalVisit) -> None:
        visit.next_step, visit.ending = 0, False
        self._next(visit)


def _frame_type(frame: str | bytes) -> str:
    """The ``type`` of a frame that starts with it (what msgspec and our requests write)."""
    head = frame[:40] if isinstance(frame, str) else frame[:40].decode(errors="replace")
    if not head.startswith('{"type":"'):
        return ""
    return head[9:].split('"', 1)[0]


class Worker:
    def __init__(self, url: str, mode: str, offices: list[Office], secret: Path) -> None:
        from lapak.signaling.tokens import KeyRing

        self.url = url
        self.mode = mode
        self.stats = Stats()
        self.recording = False
        self.inflight = 0
        self.drained = asyncio.Event()
        self.acked_in_window = 0
        self.ready_visits: deque[tuple[Client, LocalVisit]] = deque()
        # staggered visits: (ready at, n, client, visit) of visits an officer is looking at
        self.parked: list[tuple[float, int, Client, LocalVisit]] = []
        self.parked_n = itertools.count()
        self.think_s = 0.0  # mean time an officer looks at a visit before deciding; 0: none
        self.tasks: set[asyncio.Task[None]] = set()
        self.booth_for: dict[str, Client] = {}
        self.officer_of: dict[str, Client] = {}
        self.restarts: dict[str, LocalVisit] = {}
        self.booths_per_desk = 6
        keys = KeyRing.from_file(secret)
        self.officers: list[Client] = []
        self.booths: list[Client] = []
        for office in offices:
            for desk in office.desks:
                name = f"officer-{desk}"
                token = keys.issue("officer", name, office.name, desk=desk)
                self.officers.append(Client(self, "officer", name, office.name, token, office.url))
            for booth in office.booths:
                token = keys.issue("booth", booth, office.name, booth=booth)
                self.booths.append(Client(self, "booth", booth, office.name, token, office.url))
        if mode == "echo":  # pair each officer's virtual visits with booths of its office
            by_office: dict[str, list[Client]] = {}
            for booth_client in self.booths:
                by_office.setdefault(booth_client.office, []).append(booth_client)
            for office in offices:
                pool = by_office.get(office.name, [])
                officers = [c for c in self.officers if c.office == office.name]
                for i, officer in enumerate(officers):
                    for k in range(self.booths_per_desk):
                        vid = f"{officer.name}-v{k}"
                        self.officer_of[vid] = officer
                        if i * self.booths_per_desk + k < len(pool):
                            self.booth_for[vid] = pool[i * self.booths_per_desk + k]

    def ready(self, client: Client, visit: LocalVisit) -> None:
        """A visit can be decided again: at once, or after its officer's look at it."""
        if self.think_s > 0:
            at = time.monotonic() + random.expovariate(1.0 / self.think_s)
            heapq.heappush(self.parked, (at, next(self.parked_n), client, visit))
        else:
            self.ready_visits.append((client, visit))

    def _unpark(self, now: float) -> None:
        parked = self.parked
        while parked and parked[0][0] <= now:
            _, _, client, visit = heapq.heappop(parked)
            self.ready_visits.append((client, visit))

    def answered_decide(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.drained.set()

    @property
    def clients(self) -> list[Client]:
        return self.officers + self.booths

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def storm(self) -> dict[str, Any]:
        """Connect every client at once; done when all have their snapshot/booth_state."""
        started = time.perf_counter()
        results = await asyncio.gather(*(c.start() for c in self.clients), return_exceptions=True)
        elapsed = time.perf_counter() - started
        for r in results:
            if isinstance(r, BaseException):
                self.stats.errors[f"connect:{type(r).__name__}"] += 1
        return {"storm_s": elapsed, "clients": len(self.clients)}

    async def load(
        self,
        rate: float,
        duration: float,
        stagger: bool = False,
        gc_paused: bool = False,
        warmup_s: float | None = None,
    ) -> dict[str, Any]:
        """Send decisions at ``rate`` per second for ``duration`` s, open loop.

        ``stagger``: visits do not move in step. In the storm every visit started in the same
        second, and with decisions taken oldest first they stay in step: ~1,700 visits end
        and restart within 2 s every visit length. An office that has been open a while has
        its visits at every step: each visit joins at a random moment of one visit length
        (a warm-up of that length, not recorded), and after each answer its officer looks
        at it for a random (exponential) time, half a round on average, before deciding.

        ``gc_paused``: no garbage collection in this load process from the warm-up to the
        end of the window (one collection, then the survivors frozen, before; collections
        again after). A thousand clients share this process's heap, so one collection
        pauses them all at once; a real client is a process of its own. (Measured: no
        visible effect on either phase's p99, BENCHMARKS.md; kept as the cleaner floor.)

        ``warmup_s``: the warm-up's length, if not this worker's own (the probe's window
        lines up with the other load processes').
        """
        loop = asyncio.get_running_loop()
        if gc_paused:
            gc.collect()
            gc.freeze()
            gc.disable()
        warmup = 0.0
        if stagger:
            visits = len(self.ready_visits)
            round_s = max(visits, 1) / rate  # each visit's turn comes once a round
            self.think_s = round_s / 2
            warmup = STEPS * round_s if warmup_s is None else warmup_s
            start = time.monotonic()
            while self.ready_visits:
                client, visit = self.ready_visits.popleft()
                at = start + random.uniform(0.0, warmup)
                heapq.heappush(self.parked, (at, next(self.parked_n), client, visit))
        t0 = loop.time()
        sent = skipped = 0
        while (now := loop.time()) < t0 + warmup:  # not recorded; no backlog kept
            self._unpark(time.monotonic())
            due = int((now - t0) * rate) - sent - skipped
            sent += await self._send_due(due)
            skipped = int((loop.time() - t0) * rate) - sent
            await asyncio.sleep(TICK_S)
        for kind in self.stats.latencies:
            if kind != "ready":
                self.stats.latencies[kind].clear()
        self.stats.decide_at.clear()
        self.recording = True
        cpu0, t0 = cpu_seconds(), loop.time()
        sent = starved_ticks = 0
        lags: list[float] = []
        end = t0 + duration
        next_tick = t0
        while (now := loop.time()) < end:
            lags.append(max(0.0, now - next_tick))
            if self.parked:
                self._unpark(time.monotonic())
            due = int((now - t0) * rate) - sent
            done = await self._send_due(due)
            sent += done
            if due - done > 0:
                starved_ticks += 1
            next_tick = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
        window = loop.time() - t0
        if self.inflight > 0:
            self.drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ACK_GRACE_S):
                    await self.drained.wait()
        self.recording = False
        if gc_paused:
            gc.enable()
            gc.unfreeze()
        unacked = sum(
            1 for c in self.officers for kind, _, _ in c.pending.values() if kind == "decide"
        )
        if unacked:
            self.stats.errors["decide:unacked"] += unacked
        lags.sort()
        return {
            "sent": sent,
            "acked": self.acked_in_window,
            "window_s": window,
            "target": int(rate * duration),
            "starved_ticks": starved_ticks,
            "loop_lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0,
            "worker_cpu_s": cpu_seconds() - cpu0,
            "warmup_s": warmup,
            "gc_paused": gc_paused,
        }

    async def _send_due(self, due: int) -> int:
        """Up to ``due`` decisions, oldest ready visit first; how many were sent."""
        sent = 0
        while sent < due and self.ready_visits:
            client, visit = self.ready_visits.popleft()
            if visit.gone or visit.inflight or visit.ending or visit.next_step >= STEPS:
                continue
            await client.decide(visit)
            sent += 1
        return sent

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in self.clients:
            c.closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)

    def report(self) -> dict[str, Any]:
        return {
            "latencies": self.stats.latencies,
            "decide_at": self.stats.decide_at,
            "errors": dict(self.stats.errors),
            "messages_in": self.stats.messages_in,
            "seq_gaps": self.stats.seq_gaps,
            "acked": self.stats.acked,
            "window_in": self.stats.window_in,
            "window_bytes_in": self.stats.window_bytes_in,
            "window_answers": self.stats.window_answers,
            "window_requests": self.stats.window_requests,
            "extra_samples": self.stats.extra_samples,
        }


async def _serve_commands(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    worker: Worker | None = None
    while True:
        cmd: dict[str, Any] = await loop.run_in_executor(None, pipe.recv)
        op = cmd["op"]
        if op == "quit":
            return
        try:
            if op == "storm":
                offices = [Office(**o) for o in cmd["offices"]]
                worker = Worker(cmd["url"], cmd["mode"], offices, Path(cmd["secret"]))
                pipe.send(await worker.storm())
            elif op == "load":
                assert worker is not None
                pipe.send(
                    await worker.load(
                        cmd["rate"],
                        cmd["duration"],
                        cmd.get("stagger", False),
                        cmd.get("gc_paused", False),
                        cmd.get("warmup_s"),
                    )
                )
            elif op == "close":
                assert worker is not None
                await worker.close()
                pipe.send(worker.report())
                worker = None
        except (OSError, WebSocketException) as exc:
            pipe.send({"failed": f"{type(exc).__name__}: {exc}"})


def worker_main(pipe: Connection) -> None:
    """Entry point of a load process (multiprocessing target)."""
    raise_nofile()
    asyncio.run(_serve_commands(pipe))


# -- the floor: a bare echo server ----------------------------------------------------------


@dataclass
class Extras:
    """The fair floor: after each echo, the extra frames the real server sent per request.

    Taken from the real phase of the same run: ``per_request`` frames that answered nothing
    (deltas, booth states) per request the clients sent, and a uniform sample of them, so
    that the clients receive and decode the same number of frames of the same sizes in
    both phases. The real server sends a decision's delta to the officer and its booth
    state to the booth; here both follow the echo on the requester's connection (the same
    load process: an office is never split).
    """

    per_request: float = 0.0
    frames: list[str] = field(default_factory=list)
    _next: int = 0

    def due(self) -> list[str]:
        if not self.frames:
            return []
        whole = int(self.per_request)
        n = whole + (random.random() < self.per_request - whole)
        out = []
        for _ in range(n):
            out.append(self.frames[self._next])
            self._next = (self._next + 1) % len(self.frames)
        return out


async def _echo(ws: ServerConnection, extras: Extras) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)
            for frame in extras.due():
                await ws.send(frame)


async def _run_echo(host: str, port: int, extras: Extras) -> None:
    async def handler(ws: ServerConnection) -> None:
        await _echo(ws, extras)

    async with serve(
        handler,
        host,
        port,
        compression=None,
        max_size=WIRE_MAX_SIZE,
        ping_interval=20,
        create_connection=SpreadServerConnection,  # keepalive as lapak signal's
    ) as server:
        sys.stdout.write("# echo server listening\n")
        sys.stdout.flush()
        await server.serve_forever()


def echo_main(host: str, port: int, extras_file: str | None = None, gc_off: bool = False) -> None:
    """Entry point of the echo server process: same websocket settings as lapak signal;
    ``extras_file`` (JSON ``{"per_request": r, "frames": [...]}``): the fair floor;
    ``gc_off``: no garbage collection at all (the floor's own full collections, walking its
    2,000 connections, are no part of a floor; it lives one point, a minute or two)."""
    raise_nofile()
    if gc_off:
        gc.disable()
    extras = Extras()
    if extras_file:
        loaded = msgspec.json.decode(Path(extras_file).read_bytes())
        extras = Extras(float(loaded["per_request"]), list(loaded["frames"]))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_echo(host, port, extras))


# -- the harness: shared by bench/signaling.py and bench/cluster.py -------------------------

ROOT = Path(__file__).resolve().parent.parent


def say(text: str) -> None:
    sys.stdout.write(f"# {text}\n")
    sys.stdout.flush()


def listen_overflows() -> int | None:
    """Connections the kernel dropped because a listen queue was full (machine-wide)."""
    with contextlib.suppress(OSError, ValueError):
        lines = Path("/proc/net/netstat").read_text().splitlines()
        names, values = (ln.split() for ln in lines if ln.startswith("TcpExt:"))
        return int(values[names.index("ListenOverflows")])
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile in milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return round(ordered[rank] * 1000, 3)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {timeout} s")


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"echo server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"echo server not listening on {port} within {timeout} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Workers:
    """The load processes, reused by every phase and every point of a run."""

    def __init__(self, count: int, cpus: set[int] | None = None, probe: bool = False) -> None:
        """``probe``: one more process, the last, for the probe (``run_phase``)."""
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        self.probe_nice: int | None = None  # the probe's niceness, if it could be raised
        for _ in range(count + probe):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
            proc.start()
            if cpus and proc.pid is not None:  # --pin: before it starts any thread
                os.sched_setaffinity(proc.pid, cpus)
            self.pipes.append(parent)
            self.procs.append(proc)
        if probe and self.procs[-1].pid is not None:
            # woken at once on a core it shares with the busy load processes, as a client
            # on a machine of its own would be (it takes ~2 % of a core); needs root
            with contextlib.suppress(PermissionError):
                os.setpriority(os.PRIO_PROCESS, self.procs[-1].pid, PROBE_NICE)
                self.probe_nice = PROBE_NICE

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs if proc.pid is not None]

    def ask(self, commands: list[dict[str, Any]], timeout: float = 240) -> list[dict[str, Any]]:
        for pipe, cmd in zip(self.pipes, commands, strict=True):
            pipe.send(cmd)
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise RuntimeError(f"a load process did not answer {commands[0]['op']}")
            answer = pipe.recv()
            if "failed" in answer:
                raise RuntimeError(f"a load process failed: {answer['failed']}")
            answers.append(answer)
        return answers

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send({"op": "quit"})
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds of processes that may come and go (a database's backends)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def split(offices: list[Office], n: int) -> list[list[dict[str, Any]]]:
    """Whole offices per load process, balanced by client count."""
    shares: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    load = [0] * n
    for office in sorted(offices, key=lambda o: -(len(o.desks) + len(o.booths))):
        i = load.index(min(load))
        share = {"name": office.name, "desks": office.desks, "booths": office.booths}
        shares[i].append({**share, "url": office.url})
        load[i] += len(office.desks) + len(office.booths)
    return shares


class CpuSampler:
    """Each second: CPU used on the machine by processes outside this bench (noise)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.foreign: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _machine_busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def _ours(self) -> float:
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    def _run(self) -> None:
        busy, ours, at = self._machine_busy(), self._ours(), time.time()
        while not self._stop.wait(1.0):
            busy2, ours2, at2 = self._machine_busy(), self._ours(), time.time()
            self.foreign[int(at2)] = max(0.0, ((busy2 - busy) - (ours2 - ours)) / (at2 - at))
            busy, ours, at = busy2, ours2, at2

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def mean(self) -> float | None:
        values = list(self.foreign.values())
        return round(sum(values) / len(values), 3) if values else None


def worst_seconds(
    per_second: dict[int, list[float]], foreign: dict[int, float], n: int = 5
) -> list[dict[str, Any]]:
    """The seconds (UTC, when the acks came) with the highest ack p99, to match with logs.

    ``foreign_cpu`` is the CPU (in cores) that processes outside the bench used then.
    """
    rows = [
        {
            "utc": time.strftime("%H:%M:%S", time.gmtime(second)),
            "p99_ms": percentile(values, 99),
            "max_ms": percentile(values, 100),
            "acks": len(values),
            "foreign_cpu": round(foreign[second], 2) if second in foreign else None,
        }
        for second, values in per_second.items()
    ]
    rows.sort(key=lambda r: -(r["p99_ms"] or 0))
    return rows[:n]


# the probe (``run_phase(probe_rate=...)``): one desk and its booths in a load process of its
# own, deciding at a rate of its own, its acks reported apart: what one client sees
PROBE_OFFICE = Office("probe", ["probe-d00"], [f"probe-b{i:03d}" for i in range(6)])
PROBE_NICE = -10


def run_phase(
    workers: Workers,
    mode: str,
    url: str,
    offices: list[Office],
    secret: Path,
    rate: float,
    duration: float,
    server_pids: list[int],
    profile: Path | None = None,
    keep: Path | None = None,
    store_pids: Callable[[], list[int]] | None = None,
    stagger: bool = False,
    gc_paused: bool = False,
    at_load: Callable[[], None] | None = None,
    probe_rate: float = 0.0,
) -> dict[str, Any]:
    """Connect storm, paced decisions, close; against the real server or the echo floor.
    ``server_pids``: the server processes (one, or every node of a cluster): their CPU is
    summed; RSS is the largest. The result's ``acked`` lists (visit, step) of every
    acknowledged decision (not in the JSON: for checking the store afterwards).
    ``store_pids()``: the database's processes (PostgreSQL), asked for when the load starts:
    ``store_cpu_cores``. ``stagger``: visits out of step; ``gc_paused``: no collections in
    the load processes during the load (both ``Worker.load``). The result's ``extras`` (not
    in the JSON either): what a fair floor must send (``Extras``). ``at_load()`` runs just
    before the load starts (after the storm). ``probe_rate`` > 0: the last load process is
    the probe (``PROBE_OFFICE``, deciding ``probe_rate`` times a second, its window lined
    up with the others'); the ``probe_*`` keys are its acks, the other keys leave it out."""
    probing = probe_rate > 0
    shares = split(offices, len(workers.pipes) - probing)
    if probing:
        shares.append(split([PROBE_OFFICE], 1)[0])
    officers = sum(len(o.desks) for o in offices)
    clients = officers + sum(len(o.booths) for o in offices)
    label = "server" if mode == "real" else "floor"
    say(f"{label}: connect storm of {clients} clients ({officers} officers) to {url}")
    overflows = listen_overflows()
    started = time.perf_counter()
    storms = workers.ask(
        [
            {"op": "storm", "url": url, "mode": mode, "offices": share, "secret": str(secret)}
            for share in shares
        ]
    )
    storm_s = time.perf_counter() - started
    overflowed = listen_overflows()
    if overflowed is not None and overflows is not None:
        overflowed -= overflows
    slowest = max(s["storm_s"] for s in storms)
    say(
        f"{label}: all connected and snapshotted in {storm_s:.2f} s "
        f"(slowest load process {slowest:.2f} s; listen-queue overflows {overflowed})"
    )
    time.sleep(1.0)  # let the last routings land before pacing starts
    per_officer = rate / officers
    commands = [
        {
            "op": "load",
            "rate": per_officer * sum(len(o["desks"]) for o in share),
            "duration": duration,
            "stagger": stagger,
            "gc_paused": gc_paused,
        }
        for share in shares
    ]
    if probing:  # every worker's warm-up is STEPS rounds of 6 visits per desk at its rate
        commands[-1]["rate"] = probe_rate
        commands[-1]["warmup_s"] = STEPS * 6 / per_officer if stagger else 0.0
    warmup = f" after a {STEPS} x round warm-up (visits staggered)" if stagger else ""
    say(f"{label}: {rate:g} decisions/s for {duration:g} s{warmup}")
    spy = None
    if profile is not None:
        spy_cmd = [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid", str(server_pids[0])]
        spy_cmd += ["--duration", str(int(duration)), "--format", "raw", "--threads"]
        spy_cmd += ["--nonblocking", "--output", str(profile)]
        if os.environ.get("BENCH_PYSPY_GIL"):
            spy_cmd.append("--gil")  # only samples of the thread holding the GIL
        say(f"profiling the server: {' '.join(spy_cmd)}")
        spy = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if at_load is not None:
        at_load()
    store = store_pids() if store_pids is not None else []
    ours = [*server_pids, *store, os.getpid(), *workers.pids, *([spy.pid] if spy else [])]
    with CpuSampler(ours) as sampler:
        cpu0, wall0 = sum(cpu_seconds(pid) for pid in server_pids), time.perf_counter()
        store0 = _cpu_of(store)
        loads = workers.ask(commands, timeout=duration + 180)
    if spy is not None:
        spy.wait(30)
    elapsed = time.perf_counter() - wall0  # server CPU: over the warm-up too (same rate)
    cpu_cores = (sum(cpu_seconds(pid) for pid in server_pids) - cpu0) / elapsed
    store_cores = (_cpu_of(store) - store0) / elapsed
    rss, rss_peak = max(rss_mb(pid) for pid in server_pids)
    reports = workers.ask([{"op": "close"}] * len(shares))
    probe: dict[str, Any] = {}
    if probing:
        probe = _probe_figures(reports.pop(), loads.pop())
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    per_second: dict[int, list[float]] = {}
    acked_steps: list[tuple[str, int]] = []
    if keep is not None:  # every decision's ack: when it came (UTC) and how long it took
        keep.mkdir(parents=True, exist_ok=True)
        with (keep / f"acks-{mode}-{clients}.csv").open("w") as out:
            out.write("at,ack_ms\n")
            for report in reports:
                pairs = zip(report["decide_at"], report["latencies"]["decide"], strict=True)
                out.writelines(f"{at:.4f},{lat * 1000:.3f}\n" for at, lat in pairs)
    for report in reports:
        acked_steps.extend((visit, step) for visit, step in report["acked"])
        for at, latency in zip(report["decide_at"], report["latencies"]["decide"], strict=True):
            per_second.setdefault(int(at), []).append(latency)
        for kind, values in report["latencies"].items():
            latencies.setdefault(kind, []).extend(values)
        for code, count in report["errors"].items():
            errors[code] = errors.get(code, 0) + count
    window = max(w["window_s"] for w in loads)
    acked = sum(w["acked"] for w in loads)
    window_requests = sum(r["window_requests"] for r in reports)
    window_in = sum(r["window_in"] for r in reports)
    extra = window_in - sum(r["window_answers"] for r in reports)
    extra_per_request = extra / window_requests if window_requests else 0.0
    samples = [frame for r in reports for frame in r["extra_samples"]]
    random.shuffle(samples)
    result = {
        "clients": clients,
        "officers": officers,
        "connect_storm_s": round(storm_s, 3),
        "listen_overflows": overflowed,
        "ready_p99_ms": percentile(latencies.get("ready", []), 99),
        "decisions_sent": sum(w["sent"] for w in loads),
        "decisions_target": sum(w["target"] for w in loads),
        "decisions_acked": acked,
        "decisions_per_s": round(acked / window, 1),
        "ack_p50_ms": percentile(latencies.get("decide", []), 50),
        "ack_p99_ms": percentile(latencies.get("decide", []), 99),
        "ack_max_ms": percentile(latencies.get("decide", []), 100),
        # the same acks timed when their bytes reached the client (ArrivalConnection)
        "ack_arrival_p50_ms": percentile(latencies.get("decide_arrival", []), 50),
        "ack_arrival_p99_ms": percentile(latencies.get("decide_arrival", []), 99),
        "end_visit_p99_ms": percentile(latencies.get("end_visit", []), 99),
        "start_visit_p99_ms": percentile(latencies.get("start_visit", []), 99),
        "visits_ended": len(latencies.get("end_visit", [])),
        "errors": sum(errors.values()),
        "error_codes": errors,
        "messages_in": sum(r["messages_in"] for r in reports),
        "starved_ticks": sum(w["starved_ticks"] for w in loads),
        "load_loop_lag_p99_ms": round(max(w["loop_lag_p99_ms"] for w in loads), 3),
        "load_cpu_cores": round(sum(w["worker_cpu_s"] for w in loads) / window, 3),
        "server_cpu_cores": round(cpu_cores, 3),
        "store_cpu_cores": round(store_cores, 3) if store else None,
        "server_rss_mb": round(rss, 1),
        "server_rss_peak_mb": round(rss_peak, 1),
        "foreign_cpu_cores": sampler.mean(),
        "worst_seconds": worst_seconds(per_second, sampler.foreign),
        "acked": acked_steps,
        # the recorded window: frames in per request sent, and what answered nothing
        "visits": "staggered" if stagger else "storm",
        "client_gc": "paused" if gc_paused else "on",
        "warmup_s": round(max(w["warmup_s"] for w in loads), 1),
        "window_requests": window_requests,
        "window_frames_in": window_in,
        "window_bytes_in": sum(r["window_bytes_in"] for r in reports),
        "frames_in_per_request": round(window_in / window_requests, 3) if window_requests else None,
        "extras": Extras(extra_per_request, samples),
        **probe,
    }
    say(
        f"{label}: {result['decisions_per_s']}/s acked, p50 {result['ack_p50_ms']} ms, "
        f"p99 {result['ack_p99_ms']} ms, errors {result['errors']} {errors or ''}, "
        f"server {result['server_cpu_cores']} cores {result['server_rss_mb']} MB; "
        f"others on the machine used {result['foreign_cpu_cores']} cores"
    )
    return result


def _probe_figures(report: dict[str, Any], load: dict[str, Any]) -> dict[str, Any]:
    """The probe's own figures: its decisions' acks, also timed at their arrival."""
    latencies = report["latencies"]
    return {
        "probe_acks": len(latencies["decide"]),
        "probe_p50_ms": percentile(latencies["decide"], 50),
        "probe_p99_ms": percentile(latencies["decide"], 99),
        "probe_arrival_p99_ms": percentile(latencies["decide_arrival"], 99),
        "probe_loop_lag_p99_ms": round(load["loop_lag_p99_ms"], 3),
        "probe_errors": sum(report["errors"].values()),
        "probe_error_codes": report["errors"],
    }


if __name__ == "__main__":  # host port [extras.json|-] [nogc]
    extras_arg = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    echo_main(sys.argv[1], int(sys.argv[2]), extras_arg, "nogc" in sys.argv[4:])
