"""The one test driver of the sans-I/O hub: feeds frames, disconnects and ticks at a fake
clock, and gives back what each connection receives as the wire carries it (each struct
encoded once, as the server does, and read back as JSON; every frame must also decode with
``messages.decode_server``, as clients read it)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from lapak.signaling.config import ServerConfig
from lapak.signaling.events import Event
from lapak.signaling.hub import Clock, Hub, Result
from lapak.signaling.messages import decode_server, encode
from lapak.signaling.state import State
from lapak.signaling.tokens import KeyRing

NOW = 1_800_000_000.0
Message = dict[str, Any]


@dataclass
class Step:
    """What one frame, disconnect or tick produced, as the wire carries it."""

    result: Result
    outputs: list[tuple[int, Message]] = field(default_factory=list)

    def to(self, conn: int) -> list[Message]:
        return [m for c, m in self.outputs if c == conn]

    @property
    def events(self) -> list[Event]:
        return self.result.events

    @property
    def closes(self) -> list[tuple[int, int, str]]:
        return self.result.closes


class HubDriver:
    """A hub at a fake clock. ``now`` is the wall clock; ``mono`` the monotonic clock, which
    follows the wall clock unless a call sets it apart."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        keys: KeyRing | None = None,
        state: State | None = None,
        now: float = NOW,
        mono: float | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        self.now = now
        self.mono = now if mono is None else mono
        self._sessions = 0
        self.inbox: dict[int, list[Message]] = defaultdict(list)  # all a connection got
        self.hub = Hub(
            keys or KeyRing((b"k" * 32,)),
            state,
            config,
            clock=Clock(wall=lambda: self.now, mono=lambda: self.mono),
            new_session_id=self._new_session_id,
            tz=tz,
            random_bytes=random.Random(15).randbytes,  # keys and nonces, reproducibly
        )

    @property
    def keys(self) -> KeyRing:
        return self.hub.keys

    @property
    def state(self) -> State:
        return self.hub.state

    def _new_session_id(self) -> str:
        self._sessions += 1
        return f"session-{self._sessions}"

    def at(self, now: float | None, mono: float | None = None) -> None:
        """Move the clocks: ``mono`` follows ``now`` by the same step unless given."""
        if now is not None:
            self.mono += now - self.now
            self.now = now
        if mono is not None:
            self.mono = mono

    def _step(self, result: Result) -> Step:
        step = Step(result)
        for conn, message in result.outputs:
            text = encode(message)
            decode_server(text)  # what clients do: must not raise
            wire = json.loads(text)
            step.outputs.append((conn, wire))
            self.inbox[conn].append(wire)
        return step

    # -- what the shell does -----------------------------------------------------------

    def connect(self) -> int:
        return self.hub.connect()

    def send(
        self, conn: int, message: Message | str, now: float | None = None, mono: float | None = None
    ) -> Step:
        self.at(now, mono)
        frame = message if isinstance(message, str) else json.dumps(message)
        return self._step(self.hub.receive(conn, frame))

    def say(self, conn: int, message: Message | str, now: float | None = None) -> list[Message]:
        """What the sender alone got back."""
        return self.send(conn, message, now).to(conn)

    def disconnect(self, conn: int, now: float | None = None, mono: float | None = None) -> Step:
        self.at(now, mono)
        return self._step(self.hub.disconnect(conn))

    def tick(self, now: float | None = None, mono: float | None = None) -> Step:
        self.at(now, mono)
        return self._step(self.hub.tick())

    # -- shortcuts ---------------------------------------------------------------------

    def token(self, role: str, *, sub: str | None = None, office: str = "main", **kw: Any) -> str:
        kw.setdefault("now", self.now)
        return self.keys.issue(role, sub or role, office, **kw)

    def hello(
        self,
        role: str,
        *,
        session: str | None = None,
        now: float | None = None,
        **claims: Any,
    ) -> tuple[int, Message]:
        """A new connection says hello; returns it and the first answer (the welcome)."""
        self.at(now)
        conn = self.connect()
        message: Message = {"type": "hello", "id": 1, "token": self.token(role, **claims)}
        if session is not None:
            message["session"] = session
        answers = self.say(conn, message)
        return conn, answers[0]

    def join(self, role: str, **claims: Any) -> int:
        """A connection whose hello must be accepted."""
        conn, welcome = self.hello(role, **claims)
        assert welcome["type"] == "welcome", f"hello accepted: {welcome}"
        return conn

    def start_visit(
        self, booth: int, name: str = "S", membership_no: str = "1", **claimant: str
    ) -> str:
        """The booth starts a visit; returns its id from the ack."""
        who = {"name": name, "membership_no": membership_no, **claimant}
        ack = self.say(booth, {"type": "start_visit", "id": 2, "claimant": who})[0]
        assert ack["type"] == "ack", f"start_visit accepted: {ack}"
        return str(ack["visit"])

    def restart(self, config: ServerConfig | None = None, now: float | None = None) -> HubDriver:
        """A new hub over the same keys and state, as after a server restart."""
        return HubDriver(
            config,
            keys=self.keys,
            state=self.hub.state,
            now=self.now if now is None else now,
            tz=self.hub.tz,
        )
