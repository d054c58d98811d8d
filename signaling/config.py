"""Server configuration: one TOML file (``lapak signal --config FILE``), all keys optional.

Every key, its type and default is documented in docs/configuration.md. The file is decoded
into typed structs that refuse unknown keys and wrong types by name (a misspelt key must not
silently fall back to a default), then flattened into ``ServerConfig``, the object the hub and
the server read.

```toml
[server]
offices = ["main"]
grace_s = 30

[workflows.JHT]
steps = ["identity", "membership", "family_card", "bank_book", "termination_letter", "decision"]

[reasons]
list = ["document unreadable", "document missing"]

[pins]
booth-01 = "desk-1"

[token_ttl_max_s]
officer = 43200

[[desks]]
id = "desk-1"
office = "main"
capacity = 6
```

Defaults for workflows and reasons come from ``signaling/workflows.toml``.
"""

from __future__ import annotations

import resource
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from lapak.signaling.workflows import default_reasons, default_workflows

WIRE_MAX_FRAME_BYTES = 1024 * 1024  # the websocket layer closes 1009 beyond this
FD_RESERVE = 64  # descriptors kept for the log, listeners, stdio and the odd file


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


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
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class _Server(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    offices: list[Name] = []
    grace_s: NonNegative = 30.0
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024, le=WIRE_MAX_FRAME_BYTES)] = 64 * 1024
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


class _Workflow(msgspec.Struct, forbid_unknown_fields=True):
    steps: Annotated[list[Name], msgspec.Meta(min_length=1)]


Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class _Reasons(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[Reason], msgspec.Meta(min_length=1)] = msgspec.field(name="list")


class DeskSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Name
    office: Name
    capacity: Annotated[int, msgspec.Meta(ge=1, le=6)] = 6


class TokenTtl(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Longest lifetime ``lapak token`` may give each role, in seconds."""

    officer: Positive = 12 * 3600.0
    booth: Positive = 7 * 24 * 3600.0
    supervisor: Positive = 12 * 3600.0
    admin: Positive = 3600.0


class _File(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: _Server = msgspec.field(default_factory=_Server)
    workflows: dict[Name, _Workflow] = {}
    reasons: _Reasons | None = None
    pins: dict[Name, Name] = {}
    desks: list[DeskSpec] = []
    token_ttl_max_s: TokenTtl = msgspec.field(default_factory=TokenTtl)


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


@dataclass
class ServerConfig:
    offices: list[str] = field(default_factory=list)
    grace_s: float = 30.0
    max_frame_bytes: int = 64 * 1024
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
    token_ttl_max_s: TokenTtl = field(default_factory=TokenTtl)

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
    def load(cls, path: str | Path | None) -> ServerConfig:
        """Read and check a TOML file; raise ConfigError naming the file and the bad key."""
        if path is None:
            return cls()
        raw = read_toml(path)
        try:
            return cls.from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ServerConfig:
        try:
            parsed = msgspec.convert(raw, _File)
        except msgspec.ValidationError as exc:
            raise ConfigError(_name_table(raw, _readable(str(exc)))) from None
        server = parsed.server
        for name, workflow in parsed.workflows.items():
            if len(set(workflow.steps)) != len(workflow.steps):
                raise ConfigError(f"[workflows.{name}] steps must be distinct")
        for origin in server.allowed_origins:
            if origin != origin_of(origin):
                raise ConfigError(
                    f"[server] allowed_origins: {origin!r} is not an origin "
                    f"(scheme://host[:port], no path), e.g. {origin_of(origin)!r}"
                )
        if server.public_url is not None:
            origin_of(server.public_url)  # raises ConfigError when it is not a URL
        ids = [d.id for d in parsed.desks]
        if len(set(ids)) != len(ids):
            raise ConfigError("[[desks]] ids must be distinct")
        return cls(
            **{name: getattr(server, name) for name in server.__struct_fields__},
            workflows={k: list(w.steps) for k, w in parsed.workflows.items()},
            reasons=list(parsed.reasons.items) if parsed.reasons else [],
            pins=dict(parsed.pins),
            desks=list(parsed.desks),
            token_ttl_max_s=parsed.token_ttl_max_s,
        )


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


def _name_table(raw: dict[str, Any], message: str) -> str:
    """msgspec cannot name a dict key (``$.workflows[...]``): find the workflow that fails."""
    if not message.startswith("[workflows.*]"):
        return message
    for name, value in (raw.get("workflows") or {}).items():
        try:
            msgspec.convert({"workflows": {"x": value}}, _File)
        except msgspec.ValidationError as exc:
            return _readable(str(exc)).replace("[workflows.*]", f"[workflows.{name}]", 1)
    return message


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
