"""The console's keys: one table per role, the bindings made from it, the help rows and the
command-palette entries, all from the same table (so none can list a key the others lack).

Only Textual's public binding API: ``Binding`` ids carry the keymap (``[keys]`` in the config
file), and what the footer and help show is read back from ``Screen.active_bindings``, which
already has the keymap applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from textual.app import SystemCommand
from textual.binding import ActiveBinding, Binding, BindingType

from lapak.console.i18n import t
from lapak.console.layout import MAX_SLOTS


@dataclass(frozen=True)
class KeySpec:
    """One key of a table: its binding id (the config file's name for it), default key,
    action, label and help (translation keys), and whether the footer shows it."""

    id: str
    key: str
    action: str
    label: str
    help: str
    show: bool


@dataclass(frozen=True)
class KeyHelp:
    """One row of the help screen."""

    keys: str
    label: str
    help: str


def _spec(id: str, key: str, action: str, name: str, show: bool) -> KeySpec:
    return KeySpec(id, key, action, f"key.{name}", f"help.{name}", show)


OFFICER_KEYS: tuple[KeySpec, ...] = (
    *(_spec(f"on_air_{n}", str(n), f"focus_slot({n})", "on_air", n == 1)
      for n in range(1, MAX_SLOTS + 1)),
    _spec("off_air", "0", "focus_slot(0)", "off_air", False),
    _spec("next", "tab", "select(1)", "next", False),
    _spec("previous", "shift+tab", "select(-1)", "previous", False),
    _spec("longest", "space", "longest", "longest", True),
    _spec("approve", "a", "approve", "approve", True),
    _spec("reject", "x", "reject", "reject", True),
    _spec("reopen", "o", "reopen", "reopen", True),
    _spec("zoom", "z", "zoom", "zoom", True),
    _spec("mute", "m", "mute", "mute", True),
    _spec("finish", "d", "finish", "finish", True),
    _spec("escalate", "e", "escalate", "escalate", True),
    _spec("snapshot", "s", "snapshot", "snapshot", True),
    _spec("help", "question_mark", "help", "help", True),
    _spec("quit", "q", "quit_console", "quit", True),
)  # fmt: skip

SUPERVISOR_KEYS: tuple[KeySpec, ...] = (
    _spec("next", "tab", "select(1)", "next", True),
    _spec("previous", "shift+tab", "select(-1)", "previous", False),
    _spec("zoom", "z", "zoom", "zoom", True),
    _spec("alerts", "n", "alerts", "alerts", True),  # alerts and escalations
    _spec("overview", "v", "overview", "overview", True),
    _spec("desks", "w", "pick_desk", "desks", True),
    # the supervisor's voice on the watched desk (the server checks the token's grants); in
    # help and the palette, not the footer (no room at 80 columns; the banner says the mode)
    _spec("monitor", "l", "supervise('monitor')", "monitor", False),
    _spec("coach", "c", "supervise('coach')", "coach", False),
    _spec("barge", "b", "supervise('barge')", "barge", False),
    _spec("help", "question_mark", "help", "help", True),
    _spec("quit", "q", "quit_console", "quit", True),
)

BINDING_IDS = frozenset(k.id for k in OFFICER_KEYS + SUPERVISOR_KEYS)
"""Every name the config file's ``[keys]`` may rebind."""

ESSENTIAL_ACTIONS = frozenset(
    {"focus_slot(1)", "approve", "reject", "finish", "help", "quit_console", "select(1)", "zoom",
     "overview", "pick_desk"}
)  # fmt: skip
"""The footer keys kept on a narrow terminal (the rest are in help and the palette)."""

MUTATING_ACTIONS = frozenset(
    {"focus_slot", "longest", "approve", "reject", "reopen", "mute", "finish", "escalate",
     "snapshot"}
)  # fmt: skip
"""Actions that change a visit or the air: never run in the read-only view."""

WIDE_FOOTER = 120
"""Narrower terminals show only the keys an officer needs to decide."""


def make_bindings(table: Iterable[KeySpec]) -> list[BindingType]:
    """The bindings of a key table (labels in the language at import; ``presented`` shows
    them in the one chosen at start)."""
    return [
        Binding(
            k.key,
            k.action,
            t(k.label),
            show=k.show,
            id=k.id,
            key_display="1-6" if k.id == "on_air_1" else None,
            priority=k.key in ("tab", "shift+tab"),
            tooltip=t(k.help),
        )
        for k in table
    ]


_SPECS = {k.id: k for k in OFFICER_KEYS + SUPERVISOR_KEYS}


def presented(active: dict[str, ActiveBinding], *, narrow: bool) -> dict[str, ActiveBinding]:
    """The active bindings as a footer should show them: labels in the current language
    and, on a narrow terminal, only the essential keys (the others still work)."""
    shown: dict[str, ActiveBinding] = {}
    for key, entry in active.items():
        binding = entry.binding
        spec = _SPECS.get(binding.id or "")
        if spec is not None:
            binding = replace(
                binding,
                description=t(spec.label),
                tooltip=t(spec.help),
                show=binding.show and (not narrow or binding.action in ESSENTIAL_ACTIONS),
            )
        shown[key] = entry._replace(binding=binding, tooltip=binding.tooltip)
    return shown


def bound_keys(active: dict[str, ActiveBinding]) -> dict[str, list[str]]:
    """Binding id -> the keys bound to it now (the config file may have changed them)."""
    keys: dict[str, list[str]] = {}
    for key, entry in active.items():
        if entry.binding.id is not None:
            keys.setdefault(entry.binding.id, []).append(key)
    return keys


def help_rows(
    table: Iterable[KeySpec],
    active: dict[str, ActiveBinding],
    display: Callable[[Binding], str],
) -> list[KeyHelp]:
    """The help rows: every key as bound now; ``1``-``6`` as one row."""
    bound = bound_keys(active)
    rows = []
    for spec in table:
        if spec.id.startswith("on_air_") and spec.id != "on_air_1":
            continue
        if spec.id == "on_air_1":
            slots = [bound.get(f"on_air_{n}", []) for n in range(1, MAX_SLOTS + 1)]
            default = all(keys == [str(n)] for n, keys in enumerate(slots, 1))
            keys = "1-6" if default else ",".join(display(Binding(k[0], "")) for k in slots if k)
        else:
            keys = ",".join(display(Binding(k, "")) for k in bound.get(spec.id, [spec.key]))
        rows.append(KeyHelp(keys, t(spec.label), t(spec.help)))
    return rows


def palette_commands(
    table: Iterable[KeySpec], run: Callable[[str], Callable[[], object]]
) -> Iterator[SystemCommand]:
    """Every key's action is also a command in the palette (ctrl+p); ``run(action)`` makes
    the callback that runs it."""
    for spec in table:
        title = t(spec.label)
        if spec.id.startswith("on_air_"):
            title = t("key.on_air_n", n=spec.id.rsplit("_", 1)[1])
        yield SystemCommand(title, t(spec.help), run(spec.action))
