"""The console's settings file (TOML): thresholds, reject reasons, keys, language, video.

Pure apart from reading the file. Unknown sections or keys are refused with a message that
names them, so a typo in a key name never passes silently. Path, first found:
``--config PATH``, ``$LAPAK_CONFIG``, ``$XDG_CONFIG_HOME/lapak/console.toml`` (default
``~/.config/lapak/console.toml``). A missing default file means defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def default_snapshot_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lapak" / "snapshots"


_SCHEMA: dict[str, set[str]] = {
    "": {"language", "thresholds", "reject", "keys", "video", "snapshots"},
    "thresholds": {"amber_after_s", "red_after_s"},
    "reject": {"reasons"},
    "video": {"colour", "fps"},
    "snapshots": {"dir"},
}


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
    _check_keys(data, "", where)
    config = ConsoleConfig()
    if "language" in data:
        from console.i18n import LANGUAGES

        if data["language"] not in LANGUAGES:
            raise ConfigError(f"{where}: language must be one of {LANGUAGES}")
        config.language = data["language"]
    thresholds = _table(data, "thresholds", where)
    for name in ("amber_after_s", "red_after_s"):
        if name in thresholds:
            value = thresholds[name]
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}: thresholds.{name} must be a positive number")
            setattr(config, name, float(value))
    if config.red_after_s <= config.amber_after_s:
        raise ConfigError(f"{where}: thresholds.red_after_s must be above amber_after_s")
    reasons = _table(data, "reject", where).get("reasons")
    if reasons is not None:
        if (
            not isinstance(reasons, list)
            or not reasons
            or not all(isinstance(r, str) and r.strip() for r in reasons)
        ):
            raise ConfigError(f"{where}: reject.reasons must be a non-empty list of strings")
        config.reasons = [r.strip() for r in reasons]
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError(f"{where}: [keys] must be a table")
    for binding, key in keys.items():
        if known_bindings is not None and binding not in known_bindings:
            raise ConfigError(
                f"{where}: keys.{binding} is not an action; "
                f"known: {', '.join(sorted(known_bindings))}"
            )
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f'{where}: keys.{binding} must be a key name such as "y" or "f5"')
        config.keys[binding] = key.strip()
    video = _table(data, "video", where)
    if "colour" in video:
        if video["colour"] not in ("auto", "truecolor", "256"):
            raise ConfigError(f"{where}: video.colour must be auto, truecolor or 256")
        config.colour = video["colour"]
    if "fps" in video:
        fps = video["fps"]
        if not isinstance(fps, int | float) or not 1 <= fps <= 30:
            raise ConfigError(f"{where}: video.fps must be within 1..30")
        config.fps = float(fps)
    snapshots = _table(data, "snapshots", where)
    if "dir" in snapshots:
        config.snapshot_dir = Path(os.path.expanduser(str(snapshots["dir"])))
    return config


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    _check_keys(table, name, where)
    return table


def _check_keys(table: dict[str, Any], name: str, where: str) -> None:
    unknown = set(table) - _SCHEMA[name]
    if unknown:
        prefix = f"{name}." if name else ""
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(prefix + k for k in sorted(unknown))}"
        )


def colour_mode(setting: str, environ: dict[str, str] | None = None) -> str:
    """``auto`` means truecolor when the terminal says so (COLORTERM), else 256 colours."""
    if setting != "auto":
        return setting
    env = os.environ if environ is None else environ
    return "truecolor" if env.get("COLORTERM", "").lower() in ("truecolor", "24bit") else "256"
