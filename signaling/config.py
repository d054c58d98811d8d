"""Server configuration: one TOML file (``lapak signal --config FILE``), ``LAPAK_<KEY>``
variables over its ``[server]`` table, all keys optional.

Every key, its type, default and variable is documented in docs/configuration.md. The file is
decoded into typed structs that refuse unknown keys and wrong types by name (a misspelt key
must not silently fall back to a default), then flattened into ``ServerConfig``, the object
the hub and the server read (``ServerConfig.launch``: where the process listens and which
files it reads). Defaults for workflows and reasons come from ``signaling/workflows.toml``.
"""

from __future__ import annotations

import resource
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from lapak.signaling.limits import MAX_FRAME_BYTES, MAX_ID, MAX_REASON
from lapak.signaling.tokens import TTL_MAX_S
from lapak.signaling.workflows import default_reasons, default_workflows

WIRE_MAX_FRAME_BYTES = 1024 * 1024  # the websocket layer closes 1009 beyond this
FD_RESERVE = 64  # descriptors kept for the log, listeners, stdio and the odd file


class ConfigError(ValueError):
    """A configuration that cannot be used; each problem names its key (``problems``)."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's tables; ConfigError naming the file when it cannot be read or parsed."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]


Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
FilePath = Annotated[str, msgspec.Meta(min_length=1)]


class _Server(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: Annotated[str, msgspec.Meta(min_length=1)] = "127.0.0.1"
    port: Port = 8765
    data_dir: FilePath = "data"
    secret_file: FilePath | None = None
    signing_key: FilePath | None = None
    tls_cert: FilePath | None = None
    tls_key: FilePath | None = None
    offices: list[Name] = []
    grace_s: NonNegative = 30.0
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024, le=WIRE_MAX_FRAME_BYTES)] = (
        MAX_FRAME_BYTES
    )
    rate_per_s: Positive = 50.0
    rate_burst: Annotated[int, msgspec.Meta(ge=1)] = 100
    snapshot_every: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    snapshot_min_s: NonNegative = 300.0
    default_visit_minutes: Positive = 10.0
    allowed_origins: list[str] = []
    public_url: str | None = None
    hello_timeout_s: Positive = 10.0
    max_connections: Annotated[int, msgspec.Meta(ge=1)] | None = None
    strict_outcomes: bool = True
    video_tiers: bool = True
    alert_queue_wait_s: Positive = 300.0
    alert_not_spoken_s: Positive = 300.0
    alert_abandoned_window_s: Positive = 900.0
    alert_poor_link_s: Positive = 5.0
    recording: bool = False
    # The PostgreSQL store and leases (signaling/pglog.py, leases.py); SQLite when unset.
    store: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    node_url: Annotated[str, msgspec.Meta(pattern=r"^wss?://\S+$")] | None = None
    lease_s: Annotated[float, msgspec.Meta(ge=1)] = 10.0


class _Workflow(msgspec.Struct, forbid_unknown_fields=True):
    steps: Annotated[list[Name], msgspec.Meta(min_length=1)]


Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON)]


class _Reasons(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[Reason], msgspec.Meta(min_length=1)] = msgspec.field(name="list")


class DeskSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Name
    office: Name
    capacity: Annotated[int, msgspec.Meta(ge=1, le=6)] = 6


class TokenTtl(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Longest lifetime a token of each role may have, in seconds: ``lapak token`` refuses
    more and so does hello (``tokens.check_lifetime``)."""

    officer: Positive = TTL_MAX_S["officer"]
    booth: Positive = TTL_MAX_S["booth"]
    supervisor: Positive = TTL_MAX_S["supervisor"]
    admin: Positive = TTL_MAX_S["admin"]
    recorder: Positive = TTL_MAX_S["recorder"]


IceUrl = Annotated[str, msgspec.Meta(pattern=r"^(stuns?|turns?):\S+$")]


class IceServerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[[ice.servers]]`` entry; a TURN one without credentials gets per-client ones."""

    urls: Annotated[list[IceUrl], msgspec.Meta(min_length=1)]
    username: str | None = None
    credential: str | None = None


class IceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[ice]``: STUN/TURN servers for clients (signaling/ice.py); none by default."""

    servers: list[IceServerSpec] = []
    turn_secret_file: FilePath | None = None  # coturn's static-auth-secret
    turn_ttl_s: Positive = 3600.0


Days = Annotated[float, msgspec.Meta(ge=0)]


class Retention(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[retention]``: days an ended visit's personal data is kept before the server
    purges it (destroys its key, signaling/personal_data.py); ``[retention.offices]``
    overrides per office. Unset: kept until purged on request."""

    days: Days | None = None
    offices: dict[Name, Days] = {}


class _File(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: _Server = msgspec.field(default_factory=_Server)
    workflows: dict[Name, _Workflow] = {}
    reasons: _Reasons | None = None
    pins: dict[Name, Name] = {}
    desks: list[DeskSpec] = []
    token_ttl_max_s: TokenTtl = msgspec.field(default_factory=TokenTtl)
    ice: IceConfig = msgspec.field(default_factory=IceConfig)
    retention: Retention = msgspec.field(default_factory=Retention)


def _soft_nofile() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1_000_000 if soft == resource.RLIM_INFINITY else int(soft)


def listen_backlog() -> int:
    """Listen backlog: 4096 for reconnect storms, less under a low descriptor limit (asyncio
    accepts up to a backlog's worth of sockets in one go, before any can be refused)."""
    return min(4096, max(16, _soft_nofile() // 8))


def default_max_connections() -> int:
    """Stay below the file-descriptor limit, where accept() fails in a tight loop: keep
    ``FD_RESERVE`` for the log and friends plus one backlog of sockets being accepted."""
    return max(8, min(100_000, _soft_nofile() - FD_RESERVE - listen_backlog()))


PROCESS_KEYS = (
    "host", "port", "data_dir", "secret_file", "signing_key", "tls_cert", "tls_key",
    "store", "node_url", "lease_s",
)  # fmt: skip
"""``[server]`` keys about the process (where it listens, which files it uses), not the hub."""
PATH_KEYS = frozenset(PROCESS_KEYS[2:7])
ICE_PATH_KEYS = frozenset({"turn_secret_file"})
ENV_PREFIX = "LAPAK_"
STORE_SCHEMES = ("postgresql://", "postgres://")
LIST_SEPARATOR = ","


@dataclass(frozen=True)
class Launch:
    """Where ``lapak signal`` listens and which files it reads (the hub never sees these)."""

    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path = Path("data")
    secret_file: Path | None = None
    signing_key: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    store: str | None = None  # postgresql://...: the PostgreSQL store; None: SQLite
    node_url: str | None = None  # this node's public ws(s) URL: leases on (a cluster)
    lease_s: float = 10.0  # how long an office's lease lasts without renewal


@dataclass
class ServerConfig:
    offices: list[str] = field(default_factory=list)
    grace_s: float = 30.0
    max_frame_bytes: int = MAX_FRAME_BYTES
    rate_per_s: float = 50.0
    rate_burst: int = 100
    snapshot_every: int = 10_000
    snapshot_min_s: float = 300.0
    default_visit_minutes: float = 10.0
    workflows: dict[str, list[str]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    desks: list[DeskSpec] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)  # besides the server's own
    public_url: str | None = None  # its origin is allowed too
    hello_timeout_s: float = 10.0
    max_connections: int | None = None  # None: derived from RLIMIT_NOFILE
    strict_outcomes: bool = True
    video_tiers: bool = True  # off-air booths send thumbnails (booth_state.video)
    alert_queue_wait_s: float = 300.0  # supervisors' alerts (signaling/alerts.py)
    alert_not_spoken_s: float = 300.0
    alert_abandoned_window_s: float = 900.0
    alert_poor_link_s: float = 5.0  # a poor_link alert: an officer's link grade poor longer
    recording: bool = False  # visits are recorded: booths say so from routing
    token_ttl_max_s: TokenTtl = field(default_factory=TokenTtl)
    ice: IceConfig = field(default_factory=IceConfig)
    launch: Launch = field(default_factory=Launch)
    retention: Retention = field(default_factory=Retention)

    def __post_init__(self) -> None:
        if not self.workflows:
            self.workflows = default_workflows()
        if not self.reasons:
            self.reasons = default_reasons()

    @property
    def connection_limit(self) -> int:
        return self.max_connections or default_max_connections()

    def ttl_max(self, role: str) -> float:
        return float(getattr(self.token_ttl_max_s, role))

    def configured_origins(self) -> set[str]:
        """``allowed_origins`` plus the origin of ``public_url`` (exact strings)."""
        origins = set(self.allowed_origins)
        if self.public_url:
            origins.add(origin_of(self.public_url))
        return origins

    @classmethod
    def load(
        cls,
        path: str | Path | None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> ServerConfig:
        """Read and check a TOML file, then ``LAPAK_<KEY>`` variables of ``env``, then
        ``overrides`` (command-line flags, checked by the caller) over its ``[server]`` table.
        ConfigError lists every problem, each naming its file or variable and key. Relative
        paths in the file are relative to the file's directory."""
        raw: dict[str, Any] = {}
        problems: list[str] = []
        if path is not None:
            try:
                raw = read_toml(path)
            except ConfigError as exc:
                problems += exc.problems
            problems += [f"{path}: {p}" for p in file_problems(raw)]
            if isinstance(raw.get("server"), dict):
                _relative_to(raw["server"], Path(path).parent)
            if isinstance(raw.get("ice"), dict):
                _relative_to(raw["ice"], Path(path).parent, ICE_PATH_KEYS)
        found, wrong = env_overrides(env or {})
        problems += wrong
        if problems:
            raise ConfigError(problems)
        raw["server"] = {**raw.get("server", {}), **found, **(overrides or {})}
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ServerConfig:
        problems = file_problems(raw)
        if problems:
            raise ConfigError(problems)
        parsed = msgspec.convert(raw, _File)
        server = parsed.server
        hub_keys = [name for name in server.__struct_fields__ if name not in PROCESS_KEYS]
        return cls(
            **{name: getattr(server, name) for name in hub_keys},
            workflows={k: list(w.steps) for k, w in parsed.workflows.items()},
            reasons=list(parsed.reasons.items) if parsed.reasons else [],
            pins=dict(parsed.pins),
            desks=list(parsed.desks),
            token_ttl_max_s=parsed.token_ttl_max_s,
            ice=parsed.ice,
            retention=parsed.retention,
            launch=Launch(
                host=server.host,
                port=server.port,
                data_dir=Path(server.data_dir),
                secret_file=_path(server.secret_file),
                signing_key=_path(server.signing_key),
                tls_cert=_path(server.tls_cert),
                tls_key=_path(server.tls_key),
                store=server.store,
                node_url=server.node_url,
                lease_s=server.lease_s,
            ),
        )


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def _relative_to(server: dict[str, Any], base: Path, keys: frozenset[str] = PATH_KEYS) -> None:
    for key in keys & server.keys():
        if isinstance(server[key], str) and server[key]:
            server[key] = str(base / Path(server[key]).expanduser())


def file_problems(raw: dict[str, Any]) -> list[str]:
    """Every problem of a decoded TOML file, one line each (empty: it is valid). Each table,
    ``[server]`` key, workflow and desk is checked on its own so that one mistake does not
    hide the next."""
    problems: list[str] = []
    for table, value in raw.items():
        if table == "server" and isinstance(value, dict):
            for key, item in value.items():
                problems += server_key_problems(key, item, strict=True)
        elif table == "workflows" and isinstance(value, dict):
            for name, workflow in value.items():
                problems += [
                    p.replace("[workflows.*]", f"[workflows.{name}]", 1)
                    for p in _part_problems({"workflows": {name: workflow}})
                ]
                steps = workflow.get("steps") if isinstance(workflow, dict) else None
                if isinstance(steps, list) and len(set(map(str, steps))) != len(steps):
                    problems.append(f"[workflows.{name}] steps must be distinct")
        elif table == "desks" and isinstance(value, list):
            for index, desk in enumerate(value):
                problems += [
                    p.replace("[[desks]] #1", f"[[desks]] #{index + 1}", 1)
                    for p in _part_problems({"desks": [desk]})
                ]
            ids = [d.get("id") for d in value if isinstance(d, dict)]
            if len(set(map(str, ids))) != len(ids):
                problems.append("[[desks]] ids must be distinct")
        else:
            problems += _part_problems({table: value})
    return problems


def _part_problems(part: dict[str, Any], strict: bool = True) -> list[str]:
    try:
        msgspec.convert(part, _File, strict=strict)
    except msgspec.ValidationError as exc:
        return [_readable(str(exc))]
    return []


def server_key_problems(key: str, value: object, *, strict: bool) -> list[str]:
    """What is wrong with one ``[server]`` key's value (``strict=False``: it is a string
    from the environment, converted to the key's type)."""
    problems = _part_problems({"server": {key: value}}, strict=strict)
    if problems:
        return problems
    if key == "allowed_origins" and isinstance(value, list):
        for origin in value:
            try:
                if origin != origin_of(origin):
                    raise ConfigError(
                        f"{origin!r} is not an origin (scheme://host[:port], no path), "
                        f"e.g. {origin_of(origin)!r}"
                    )
            except ConfigError as exc:
                problems.append(f"[server] allowed_origins: {exc}")
    if key == "store" and isinstance(value, str) and not value.startswith(STORE_SCHEMES):
        problems.append(
            "[server] store: a PostgreSQL URL (postgresql://user@host/db); "
            "leave it unset for the SQLite log in data_dir"
        )
    if key == "public_url" and isinstance(value, str):
        try:
            origin_of(value)
        except ConfigError as exc:
            problems.append(f"[server] public_url: {exc}")
    return problems


def env_name(key: str) -> str:
    """``grace_s`` -> ``LAPAK_GRACE_S``."""
    return ENV_PREFIX + key.upper()


def env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The ``[server]`` keys set by ``LAPAK_<KEY>`` variables (an empty variable counts as
    unset; lists are comma-separated), and every variable that does not fit its key."""
    overrides: dict[str, Any] = {}
    problems: list[str] = []
    for key, kind in _Server.__annotations__.items():
        text = env.get(env_name(key), "").strip()
        if not text:
            continue
        value: object = text
        if "list[" in str(kind):
            value = [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]
        found = server_key_problems(key, value, strict=False)
        if found:
            problems += [f"{env_name(key)}: {p.removeprefix(f'[server] {key}: ')}" for p in found]
            continue
        converted = msgspec.convert({key: value}, _Server, strict=False)
        overrides[key] = getattr(converted, key)
    return overrides, problems


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, as a browser sends it in Origin."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not an http(s) URL")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{url!r} has a bad port") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{host}{suffix}"


def _readable(message: str) -> str:
    """msgspec says ``... - at `$.server.grace_s```; say ``[server] grace_s: ...``."""
    text, _, where = message.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    if not path:
        if text.startswith("Object contains unknown field"):
            return f"unknown table or key {text.split('`')[1]!r} (see docs/configuration.md)"
        return text
    if text.startswith("Object contains unknown field"):
        text = f"unknown key {text.split('`')[1]!r} (see docs/configuration.md)"
    return f"{_toml_path(path)}: {text}"


def _toml_path(path: str) -> str:
    """``server.grace_s`` -> ``[server] grace_s``; ``desks[1].idd`` -> ``[[desks]] #2``."""
    head, _, rest = path.replace("[...]", ".*").partition(".")
    if head.startswith("desks["):
        index = int(head[6:].split("]")[0])
        return f"[[desks]] #{index + 1}" + (f" {rest}" if rest else "")
    if head in ("workflows", "pins") and rest:
        name, _, key = rest.partition(".")
        return f"[{head}.{name}]" + (f" {key}" if key else "")
    return f"[{head}]" + (f" {rest}" if rest else "")
