"""A small asyncio client for the signalling protocol, shared by booths, consoles and tools.

Frames are decoded with :func:`lapak.signaling.messages.decode_server`, so callbacks get typed
structs, never dicts. Requests get an ``id`` and await their answer: ``Ack``/``Error``,
``Welcome`` for ``hello``, and the ``Snapshot`` carrying ``re`` for ``watch``. Every other
message (the answering snapshot too) goes to ``on_message`` in arrival order.

There is one reconnect policy (:class:`Backoff`): the first connection (``retry=True``) and
every reconnect after a drop wait by it. Errors and close codes that mean "do not come back"
(the token refused or expired, the desk taken over by a newer connection) end the session;
``ended`` then says why ("refused" or "replaced") and ``end_detail`` what the server said.

With a ``token_source`` (e.g. re-reading a token file) a live connection swaps in the newest
token by ``refresh`` at 80% of its token's lifetime, so short-lived tokens outlive nothing;
a reconnect says hello with the newest token too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeAlias, overload

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from lapak.signaling.keepalive import SpreadClientConnection
from lapak.signaling.messages import (
    Ack,
    Error,
    Moved,
    RecordingKey,
    ServerMessage,
    Snapshot,
    Welcome,
    decode_server,
)
from lapak.signaling.messages import encode as encode_message
from lapak.signaling.protocol import (
    ClientMessage,
    GetRecordingKey,
    Hello,
    Refresh,
    Watch,
)
from lapak.signaling.reconnect import (
    FINAL_CLOSE_CODES,
    FINAL_ERROR_CODES,
    Backoff,
    EndReason,
    RequestError,
    final_reason,
)
from lapak.signaling.tokens import refresh_due

__all__ = [
    "FINAL_CLOSE_CODES",
    "FINAL_ERROR_CODES",
    "Backoff",
    "EndReason",
    "RequestError",
    "SignalClient",
    "WatchMoved",
    "final_reason",
]

log = logging.getLogger("lapak.client")

MessageHandler = Callable[[ServerMessage], Awaitable[None] | None]
WelcomeHandler = Callable[[Welcome], Awaitable[None] | None]
Answer: TypeAlias = Welcome | Ack | Snapshot | Moved | RecordingKey  # moved: only for a hello
WIRE_MAX_SIZE = 1024 * 1024
REFRESH_RETRY_S = 2.0  # no newer token yet, or it was refused: look again this often
_dict_encoder = msgspec.json.Encoder()


MAX_MOVES = 3  # ``moved`` answers followed in a row before giving up


class SignalClient:
    """One signalling session. With ``reconnect=True`` a dropped connection is re-opened
    by the ``Backoff`` policy and resumed with the session id from ``welcome`` (within the
    server's grace period the client keeps its place); ``on_reconnect(welcome)`` then runs.
    ``on_connection()`` runs on every change of ``connected``/``ended``/``last_failure``."""

    tls: ClassVar[ssl.SSLContext | None] = None
    """TLS settings for ``wss://`` (the CLI's ``--ca-file``); None: the system's CAs."""

    def __init__(
        self,
        url: str,
        token: str,
        on_message: MessageHandler | None = None,
        *,
        reconnect: bool = True,
        on_reconnect: WelcomeHandler | None = None,
        on_connection: Callable[[], None] | None = None,
        policy: Backoff | None = None,
        request_timeout: float = 10.0,
        token_source: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
        entries: Sequence[str] = (),
    ) -> None:
        self.url = url
        self.entry_url = url  # where a reconnect starts over when a moved-to node is gone
        # a cluster's other nodes: a reconnect that fails at one entry tries the next
        self.entries = [url, *(e for e in entries if e != url)]
        self.token = token
        self.token_source = token_source  # the newest token (read before refresh and reconnect)
        self.clock = clock  # wall clock, against the tokens' exp
        self.refreshes = 0
        self._refresher: asyncio.Task[None] | None = None
        self.on_message = on_message
        self.reconnect = reconnect
        self.on_reconnect = on_reconnect
        self.on_connection = on_connection
        self.policy = policy or Backoff()
        self.request_timeout = request_timeout
        self.welcome: Welcome | None = None
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Answer | Error]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._closing = False
        self._moving = False  # move_to is closing this connection to say hello elsewhere
        self.closed = asyncio.Event()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.between_answers = 0  # "between nodes" answers met (a cluster's failover)
        self.close_code: int | None = None
        self.last_error: Error | None = None  # the last error without a pending request
        self.last_failure: str | None = None  # why the last connection attempt failed
        self.ended: EndReason | None = None
        self.end_detail: str | None = None

    # -- connecting ------------------------------------------------------------------------

    async def connect(self, timeout: float | None = None, *, retry: bool = False) -> Welcome:
        """Connect and say hello. ``retry``: a server that cannot be reached yet is tried
        again by the back-off policy until it answers; a refused token or an untrusted
        certificate is never retried (it raises)."""
        while True:
            try:
                async with asyncio.timeout(timeout or self.request_timeout):
                    return await self._open()
            except ssl.SSLError:
                raise  # a certificate problem does not heal by waiting
            except BetweenNodes as exc:
                self._failed(exc)
                if not retry or self._closing:
                    raise
                self.between_answers += 1
                await asyncio.sleep(self.policy.between_nodes_delay())
                continue
            except (OSError, TimeoutError) as exc:
                await self._drop_socket()
                self._failed(exc)
                if not retry or self._closing:
                    raise
                failed = self.url
                self.url = self._next_entry()  # the node we tried is down: the next entry
            delay = self.policy.next_delay()
            log.warning(
                "event=server_unreachable url=%s retry_in_s=%.1f reason=%r next=%s",
                failed, delay, self.last_failure, self.url,
            )  # fmt: skip
            await asyncio.sleep(delay)

    async def _open(self) -> Welcome:
        """Open and say hello, following ``moved`` to the office's node (a cluster)."""
        sent_by: str | None = None  # the node whose ``moved`` brought us here
        for _ in range(MAX_MOVES):
            try:
                answer = await self._open_once()
            except OSError as exc:
                if sent_by is None:
                    raise
                # The owner a live node named does not answer: it died and its lease has not
                # run out yet (a failover). Ask the node that sent us again shortly.
                owner, self.url = self.url, sent_by
                raise BetweenNodes(f"the office's owner {owner} is unreachable: {exc}") from exc
            if isinstance(answer, Welcome):
                return answer
            log.info("event=moved office=%s url=%s", answer.office, answer.url)
            await self._drop_socket()
            if answer.url == self.url:  # no node owns the office yet: ask again shortly
                raise BetweenNodes(f"office {answer.office} is between nodes")
            sent_by, self.url = self.url, answer.url
        raise ConnectionError(f"moved {MAX_MOVES} times in a row: no node owns the office")

    async def _open_once(self) -> Welcome | Moved:
        tls: dict[str, Any] = {}  # passed on to the event loop's create_connection
        if self.tls is not None and self.url.startswith("wss:"):
            tls["ssl"] = self.tls
        self._ws = await connect(
            self.url, compression=None, max_size=WIRE_MAX_SIZE,
            create_connection=SpreadClientConnection, **tls,
        )  # fmt: skip
        self.closed.clear()
        self.close_code = None
        self.last_error = None
        self._reader = asyncio.create_task(self._read(), name="signal-reader")
        if self.welcome is not None:  # a reconnect: the newest token says hello
            self._take_newer_token()
        session = self.welcome.session if self.welcome is not None else None
        try:
            answer: Welcome | Moved = await self.request(Hello(token=self.token, session=session))
        except RequestError as exc:
            self._end_for(exc.code, exc.message)
            await self._drop_socket()
            raise
        if isinstance(answer, Moved):
            return answer
        welcome = answer
        self.welcome = welcome
        self.policy.reset()
        self.last_failure = None
        self.connected.set()
        self._notify()
        if self.token_source is not None and (self._refresher is None or self._refresher.done()):
            self._refresher = asyncio.create_task(self._refresh_loop(), name="signal-refresh")
        return welcome

    def _newer_token(self) -> str | None:
        """The source's token when it lives longer than ours (a read error keeps ours)."""
        if self.token_source is None:
            return None
        try:
            token = self.token_source().strip()
        except (OSError, ValueError) as exc:
            log.warning("event=token_source_failed error=%r", exc)
            return None
        ours = refresh_due(self.token) or 0.0
        return token if token != self.token and (refresh_due(token) or 0.0) > ours else None

    def _take_newer_token(self) -> None:
        newer = self._newer_token()
        if newer is not None:
            self.token = newer

    async def _refresh_loop(self) -> None:
        """At 80% of the token's lifetime, swap in the source's newer token; until there is
        one, look again every few seconds (the old token holds until it expires)."""
        while not self._closing and self.ended is None:
            due = refresh_due(self.token)
            if due is None:
                return
            await asyncio.sleep(max(0.0, due - self.clock()))
            if not self.connected.is_set():
                await self.connected.wait()
                continue
            newer = self._newer_token()
            if newer is None:
                await asyncio.sleep(REFRESH_RETRY_S)
                continue
            try:
                ack = await self.request(Refresh(token=newer))
            except RequestError as exc:
                log.warning("event=refresh_refused code=%s message=%r", exc.code, exc.message)
                await asyncio.sleep(REFRESH_RETRY_S)
                continue
            except (ConnectionError, TimeoutError):
                continue  # the reconnect says hello with the newer token
            self.token = newer
            self.refreshes += 1
            log.info("event=token_refreshed exp=%s", ack.exp)

    async def _drop_socket(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    def _failed(self, exc: BaseException) -> None:
        self.last_failure = str(exc) or type(exc).__name__
        self._notify()

    def _end_for(self, code: str, message: str) -> None:
        reason = final_reason(error_code=code)
        if reason is not None and self.ended is None:
            self.ended, self.end_detail = reason, f"{code}: {message}"
            log.warning("event=session_ended reason=%s detail=%r", reason, self.end_detail)

    def _notify(self) -> None:
        if self.on_connection is not None:
            self.on_connection()

    async def _reconnect_loop(self) -> None:
        between = False  # the last answer: the office is between nodes
        while not self._closing and self.ended is None:
            delay = self.policy.between_nodes_delay() if between else self.policy.next_delay()
            await asyncio.sleep(delay)
            between = False
            try:
                async with asyncio.timeout(self.request_timeout):
                    welcome = await self._open()
            except RequestError as exc:
                if self.ended is not None:
                    self._notify()
                    return
                log.info("event=reconnect_failed url=%s error=%r", self.url, exc)
                await self._drop_socket()
                self._failed(exc)
                continue
            except BetweenNodes as exc:  # the node is up: ask it again shortly
                log.info("event=reconnect_failed url=%s error=%r", self.url, exc)
                self._failed(exc)
                self.between_answers += 1
                between = True
                continue
            except (OSError, TimeoutError, ConnectionError) as exc:
                log.info("event=reconnect_failed url=%s error=%r", self.url, exc)
                await self._drop_socket()
                self._failed(exc)
                self.url = self._next_entry()  # a node we were moved to is gone: ask an entry
                continue
            self.reconnects += 1
            log.info("event=reconnected resumed=%s", welcome.resumed)
            if self.on_reconnect is not None:
                outcome = self.on_reconnect(welcome)
                if outcome is not None:
                    await outcome
            return

    def _next_entry(self) -> str:
        """After a failed reconnect: the first entry point, or the one after it when the
        failed attempt was already at an entry point (a cluster node that is down)."""
        if self.url in self.entries:
            self.entry_url = self.entries[(self.entries.index(self.url) + 1) % len(self.entries)]
        return self.entry_url

    async def close(self) -> None:
        self._closing = True
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._reconnector is not None:
            self._reconnector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnector
            self._reconnector = None
        await self._drop_socket()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._fail_pending(ConnectionError("connection closed"))

    # -- sending -----------------------------------------------------------------------------

    async def send(self, message: ClientMessage | dict[str, Any]) -> None:
        """Send without waiting for an answer (a booth's SDP answers)."""
        await self._send_text(_text(message, None))

    async def _send_text(self, text: str) -> None:
        if self._ws is None:
            raise ConnectionError("not connected")
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            raise ConnectionError("connection closed") from exc

    # ``hello`` is answered by ``welcome``, ``watch`` by a snapshot, everything else by an ack:
    # the first match wins, so the overlap with ``ClientMessage`` is meant.
    @overload
    async def request(  # type: ignore[overload-overlap]  # the more specific answer first
        self, message: Hello, timeout: float | None = None
    ) -> Welcome: ...
    @overload
    async def request(  # type: ignore[overload-overlap]  # the more specific answer first
        self, message: Watch, timeout: float | None = None
    ) -> Snapshot: ...
    @overload
    async def request(  # type: ignore[overload-overlap]  # the more specific answer first
        self, message: GetRecordingKey, timeout: float | None = None
    ) -> RecordingKey: ...
    @overload
    async def request(self, message: ClientMessage, timeout: float | None = None) -> Ack: ...
    @overload
    async def request(self, message: dict[str, Any], timeout: float | None = None) -> Answer: ...

    async def request(
        self, message: ClientMessage | dict[str, Any], timeout: float | None = None
    ) -> Answer:
        """Send with an id and wait for its answer; raise RequestError on ``error``."""
        if self._ws is None:
            raise ConnectionError("not connected")
        req_id = next(self._ids)
        fut: asyncio.Future[Answer | Error] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            await self._send_text(_text(message, req_id))
            async with asyncio.timeout(timeout or self.request_timeout):
                answer = await fut
        finally:
            self._pending.pop(req_id, None)
        if isinstance(answer, Error):
            raise RequestError(str(answer.code), answer.message)
        if isinstance(answer, Moved) and not isinstance(message, dict | Hello):
            raise WatchMoved(answer)  # typed callers expect their answer: see move_to
        return answer

    async def watch_anywhere(self, desk: str) -> tuple[SignalClient, Snapshot]:
        """Watch ``desk``, wherever its office is served. On a cluster a ``*`` supervisor's
        ``watch`` of a desk whose office another node owns is answered ``moved {url}``:
        a second client with this token says hello there and watches the desk on it. The
        client that holds the watch is returned with the snapshot (the caller closes it
        when it is not this one)."""
        answer = await self.request({"type": "watch", "desk": desk})
        if isinstance(answer, Snapshot):
            return self, answer
        if not isinstance(answer, Moved):  # pragma: no cover - watch is answered so
            raise RequestError("invalid_message", f"unexpected answer to watch: {answer!r}")
        log.info("event=watch_moved desk=%s office=%s url=%s", desk, answer.office, answer.url)
        other = SignalClient(
            answer.url, self.token, self.on_message, reconnect=self.reconnect,
            on_connection=self.on_connection, request_timeout=self.request_timeout,
            token_source=self.token_source, clock=self.clock,
        )  # fmt: skip
        try:
            await other.connect()
            there = await other.request({"type": "watch", "desk": desk})
            if not isinstance(there, Snapshot):
                raise ConnectionError(f"desk {desk} moved again: {there!r}")
        except BaseException:
            await other.close()
            raise
        return other, there

    async def move_to(self, url: str) -> Welcome:
        """Say hello at ``url`` instead (a ``moved`` answer to a request): this connection
        closes (the server ends what it held: watches, coach or barge), the same token says
        hello there, and the new welcome is returned; ``on_reconnect`` does not run (the
        caller asks again what it needs). A reconnect later starts at ``url`` and falls back
        to the entry points. When ``url`` cannot be reached or refuses, the client says hello
        again where it was and the failure is raised (``ConnectionError``/``RequestError``);
        if that fails too, the ordinary reconnect takes over."""
        back = self.url
        self._moving = True
        try:
            await self._close_socket()
            try:
                self.url = url
                async with asyncio.timeout(self.request_timeout):
                    welcome = await self._open()
            except (OSError, TimeoutError, ConnectionError, RequestError) as exc:
                await self._close_socket()
                log.warning("event=move_failed url=%s error=%r", url, exc)
                self.url = back
                try:
                    async with asyncio.timeout(self.request_timeout):
                        await self._open()
                except (OSError, TimeoutError, ConnectionError, RequestError) as again:
                    await self._close_socket()
                    self._failed(again)
                    self._moving = False
                    self._start_reconnect()
                if isinstance(exc, RequestError):
                    raise
                why = str(exc) or type(exc).__name__
                raise ConnectionError(f"{url} cannot be reached: {why}") from exc
        finally:
            self._moving = False
        log.info("event=moved_to url=%s session=%s", url, welcome.session)
        return welcome

    async def _close_socket(self) -> None:
        """Close the socket and wait for its reader (which fails what was pending)."""
        await self._drop_socket()
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._reader = None

    def _start_reconnect(self) -> None:
        idle = self._reconnector is None or self._reconnector.done()
        if self.ended is None and self.reconnect and not self._closing and idle:
            self._reconnector = asyncio.get_running_loop().create_task(
                self._reconnect_loop(), name="signal-reconnect"
            )

    def _fail_pending(self, exc: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)

    # -- receiving ---------------------------------------------------------------------------

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for frame in ws:
                try:
                    message = decode_server(frame)
                except msgspec.DecodeError as exc:
                    log.warning("event=bad_frame url=%s error=%s", self.url, exc)
                    continue
                if not self._answered(message):
                    await self._deliver(message)
        except ConnectionClosed:
            pass
        finally:
            self._lost(ws)

    def _answered(self, message: ServerMessage) -> bool:
        """Resolve the request this message answers; True when nobody else should see it
        (acks, errors and welcomes; a snapshot answering ``watch`` is the desk's news too)."""
        if not isinstance(message, Welcome | Ack | Error | Snapshot | Moved | RecordingKey):
            return False
        if isinstance(message, Welcome):
            self.welcome = message  # known before the frames after it are delivered
        fut = self._pending.get(message.re) if message.re is not None else None
        if fut is None:
            if isinstance(message, Error):
                self.last_error = message
                self._end_for(str(message.code), message.message)
                log.warning("event=server_error code=%s", message.code)
            return isinstance(message, Welcome)
        if not fut.done():
            fut.set_result(message)
        return not isinstance(message, Snapshot)

    async def _deliver(self, message: ServerMessage) -> None:
        if self.on_message is not None:
            outcome = self.on_message(message)
            if outcome is not None:
                await outcome

    def _lost(self, ws: ClientConnection) -> None:
        if ws is not self._ws:
            return  # the reader of an earlier attempt's socket: a newer one is in charge
        rcvd = ws.protocol.close_rcvd
        self.close_code = rcvd.code if rcvd is not None else None
        reason = final_reason(close_code=self.close_code)
        if reason is not None and self.ended is None:
            self.ended = reason
            self.end_detail = f"closed {self.close_code}"
            log.warning("event=session_ended reason=%s detail=%r", reason, self.end_detail)
        self.connected.clear()
        self._fail_pending(ConnectionError("connection closed"))
        self.closed.set()
        if self.welcome is not None and not self._moving:  # move_to says hello itself
            self._start_reconnect()
        if not self._closing:
            self._notify()


class BetweenNodes(ConnectionError):
    """A failover under way: a cluster node answered that no node owns the office at this
    moment (``moved`` to itself), or sent us to an owner that does not answer (dead, its
    lease not yet out). That node is asked again after ``Backoff.between_nodes_delay``."""


class WatchMoved(RequestError):
    """A request (sent as a struct) about an office another node owns — a ``watch`` of its
    desk, or a ``*`` watcher's command about its desk or visit — was answered ``moved``:
    send it again at ``moved.url`` (``SignalClient.move_to`` then the request, as
    ``DeskSession`` does; or ``watch_anywhere`` with a second client)."""

    def __init__(self, moved: Moved) -> None:
        super().__init__("moved", f"office {moved.office} is served at {moved.url}")
        self.moved = moved


def _text(message: ClientMessage | dict[str, Any], req_id: int | None) -> str:
    """One client message as a frame, numbered when it is a request. A dict goes as it is
    (tests send what a struct would refuse to build)."""
    if isinstance(message, dict):
        return _dict_encoder.encode(
            message if req_id is None else {**message, "id": req_id}
        ).decode()
    if req_id is not None:
        message = msgspec.structs.replace(message, id=req_id)
    return encode_message(message)
