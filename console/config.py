"""The console's settings file (TOML): thresholds, reject reasons, keys, language, video.

Pure apart from reading the file. The file is decoded into typed msgspec structs that refuse
unknown sections and keys and wrong types, naming the setting, so a typo never passes silently.
Path, first found: ``--config PATH``, ``$LAPAK_CONFIG``, ``$XDG_CONFIG_HOME/lapak/console.toml``
(default ``~/.config/lapak/console.toml``). A missing default file means defaults.

Files the console writes (snapshots) hold personal data: they go under ``state_dir()``
(``$XDG_STATE_HOME/lapak/``, default ``~/.local/state/lapak/``) as 0600 files in 0700
directories, unless ``[snapshots] dir`` or ``$LAPAK_SNAPSHOT_DIR`` says where.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

DEFAULT_REASONS: tuple[str, ...] = (
    "document unreadable",
    "document missing",
    "name does not match",
    "face does not match the photo",
    "document expired",
    "not the account holder",
)
"""The server's default list (signaling/workflows.toml); the server's own list always wins."""


class ConfigError(ValueError):
    """The settings file is unreadable or says something we do not understand."""


@dataclass
class ConsoleConfig:
    language: str | None = None
    amber_after_s: float = 120.0
    red_after_s: float = 300.0
    reasons: list[str] | None = None  # used only when the server sends no list
    keys: dict[str, str] = field(default_factory=dict)  # binding id -> key(s), comma separated
    colour: str = "auto"  # auto | truecolor | 256
    fps: float = 15.0
    graphics: str = "auto"  # auto | kitty | sixel | blocks: the zoomed tile's pixels
    snapshot_dir: Path | None = None
    source: Path | None = None

    def reject_reasons(self, server: list[str] | None) -> list[str]:
        """The server checks reasons against its list, so its list is the one offered."""
        if server:
            return list(server)
        return list(self.reasons) if self.reasons else list(DEFAULT_REASONS)


def default_path() -> Path:
    env = os.environ.get("LAPAK_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lapak" / "console.toml"


def state_dir() -> Path:
    """Where the console keeps files with personal data: ``$XDG_STATE_HOME/lapak``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lapak"


def default_snapshot_dir() -> Path:
    """``$LAPAK_SNAPSHOT_DIR`` (the demo points it at its temporary directory), else
    ``state_dir()/snapshots``."""
    env = os.environ.get("LAPAK_SNAPSHOT_DIR")
    return Path(env) if env else state_dir() / "snapshots"


def private_dir(path: Path) -> Path:
    """Create ``path`` as 0700 (and the parents it needs, 0700 too); tighten it if it existed."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a new file readable by its owner only (0600), in a private directory."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


# -- the file's schema -------------------------------------------------------------------

Positive = Annotated[float, msgspec.Meta(gt=0)]
Reason = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
KeyName = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ThresholdsFile(_Section):
    amber_after_s: Positive = 120.0
    red_after_s: Positive = 300.0


class RejectFile(_Section):
    reasons: Annotated[list[Reason], msgspec.Meta(min_length=1)] | None = None


class VideoFile(_Section):
    colour: Literal["auto", "truecolor", "256"] = "auto"
    fps: Annotated[float, msgspec.Meta(ge=1, le=30)] = 15.0
    graphics: Literal["auto", "kitty", "sixel", "blocks"] = "auto"


class SnapshotsFile(_Section):
    dir: str | None = None


class ConsoleFile(_Section):
    """The whole file, as TOML decodes it."""

    language: Literal["en", "id"] | None = None
    thresholds: ThresholdsFile = msgspec.field(default_factory=ThresholdsFile)
    reject: RejectFile = msgspec.field(default_factory=RejectFile)
    keys: dict[str, KeyName] = msgspec.field(default_factory=dict)
    video: VideoFile = msgspec.field(default_factory=VideoFile)
    snapshots: SnapshotsFile = msgspec.field(default_factory=SnapshotsFile)


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")


def _explain(error: msgspec.ValidationError) -> str:
    """msgspec's ``Expected `float`, got `str` - at `$.thresholds.amber_after_s``` as
    ``thresholds.amber_after_s: expected float, got str``."""
    match = _AT.match(str(error))
    assert match is not None
    what, path = match.group("what"), (match.group("path") or "").lstrip(".")
    path = path.replace("[...]", ".<name>")
    unknown = _UNKNOWN.match(what)
    if unknown:
        name = f"{path}.{unknown.group('name')}" if path else unknown.group("name")
        return f"unknown setting {name}"
    what = what.replace("`", "")
    return f"{path}: {what[0].lower()}{what[1:]}" if path else what


def load_config(
    path: Path | None = None, *, known_bindings: set[str] | None = None
) -> ConsoleConfig:
    """Read the settings; an explicit ``path`` must exist, the default one may not."""
    explicit = path is not None
    path = path or default_path()
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return ConsoleConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config = parse_config(data, known_bindings=known_bindings, where=str(path))
    config.source = path
    return config


def parse_config(
    data: dict[str, Any], *, known_bindings: set[str] | None = None, where: str = "config"
) -> ConsoleConfig:
    """Decode the file's tables; every refusal names the setting."""
    try:
        file = msgspec.convert(data, ConsoleFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {_explain(exc)}") from None
    thresholds = file.thresholds
    if thresholds.red_after_s <= thresholds.amber_after_s:
        raise ConfigError(f"{where}: thresholds.red_after_s must be above amber_after_s")
    for binding in file.keys:
        if known_bindings is not None and binding not in known_bindings:
            raise ConfigError(
                f"{where}: keys.{binding} is not an action; "
                f"known: {', '.join(sorted(known_bindings))}"
            )
    snapshot_dir = file.snapshots.dir
    return ConsoleConfig(
        language=file.language,
        amber_after_s=thresholds.amber_after_s,
        red_after_s=thresholds.red_after_s,
        reasons=[r.strip() for r in file.reject.reasons] if file.reject.reasons else None,
        keys={binding: key.strip() for binding, key in file.keys.items()},
        colour=file.video.colour,
        fps=file.video.fps,
        graphics=file.video.graphics,
        snapshot_dir=Path(os.path.expanduser(snapshot_dir)) if snapshot_dir else None,
    )


def colour_mode(setting: str, environ: dict[str, str] | None = None) -> str:
    """``auto`` means truecolor when the terminal says so (COLORTERM), else 256 colours."""
    if setting != "auto":
        return setting
    env = os.environ if environ is None else environ
    return "truecolor" if env.get("COLORTERM", "").lower() in ("truecolor", "24bit") else "256"
