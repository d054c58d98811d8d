"""The console's pure parts: settings file, layout, key tables, tile text, translations.
(The desk model's rules are tested with it: tests/test_client_desk_model.py.)"""

from __future__ import annotations

import stat
import string
from pathlib import Path

import pytest

from lapak.console import i18n
from lapak.console.config import (
    ConfigError,
    colour_mode,
    default_snapshot_dir,
    load_config,
    parse_config,
    write_private,
)
from lapak.console.keys import BINDING_IDS, MUTATING_ACTIONS, OFFICER_KEYS, SUPERVISOR_KEYS
from lapak.console.layout import grid_shape, visible_slots
from lapak.console.tile import TileInfo, checklist, checklist_compact, meta_line
from lapak.console.video import fit


def test_config_file_sets_thresholds_reasons_keys_language_and_video(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    path.write_text(
        'language = "id"\n'
        "[thresholds]\namber_after_s = 60\nred_after_s = 180\n"
        '[reject]\nreasons = ["blurred", "wrong person"]\n'
        '[keys]\napprove = "y"\nzoom = "f2"\n'
        '[video]\ncolour = "256"\nfps = 10\n'
        '[snapshots]\ndir = "~/shots"\n'
    )
    config = load_config(path, known_bindings=set(BINDING_IDS))
    assert config.language == "id"
    assert (config.amber_after_s, config.red_after_s) == (60.0, 180.0)
    assert config.reject_reasons(None) == ["blurred", "wrong person"]
    assert config.reject_reasons(["server list"]) == ["server list"], "the server's list wins"
    assert config.keys == {"approve": "y", "zoom": "f2"}
    assert (config.colour, config.fps) == ("256", 10.0)
    assert config.snapshot_dir == Path.home() / "shots"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"langauge": "en"}, "unknown setting langauge"),
        ({"thresholds": {"amber": 3}}, "unknown setting thresholds.amber"),
        ({"thresholds": {"amber_after_s": "abc"}}, "thresholds.amber_after_s: expected float"),
        ({"thresholds": {"amber_after_s": -1}}, "thresholds.amber_after_s: expected float > 0"),
        ({"thresholds": {"amber_after_s": 300, "red_after_s": 100}}, "above amber"),
        ({"thresholds": 3}, "thresholds: expected object"),
        ({"reject": {"reasons": []}}, "reject.reasons: expected array of length >= 1"),
        ({"reject": {"reasons": ["ok", 3]}}, "reject.reasons[1]: expected str"),
        ({"keys": {"aprove": "y"}}, "keys.aprove is not an action"),
        ({"keys": {"approve": 7}}, "keys.<name>: expected str"),
        ({"video": {"colour": "16"}}, "video.colour: invalid enum value '16'"),
        ({"video": {"fps": 60}}, "video.fps: expected float <= 30"),
        ({"video": {"fsp": 10}}, "unknown setting video.fsp"),
        ({"snapshots": {"dir": 1}}, "snapshots.dir: expected str"),
        ({"language": "fr"}, "language: invalid enum value 'fr'"),
    ],
)
def test_config_refuses_what_it_does_not_understand(data: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(data, known_bindings=set(BINDING_IDS))
    assert says in str(info.value), f"expected {says!r} in {info.value}"


def test_config_missing_default_is_defaults_but_missing_explicit_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAPAK_CONFIG", str(tmp_path / "absent.toml"))
    assert load_config().amber_after_s == 120.0
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("language = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_config(broken)


def test_colour_mode_follows_colorterm_unless_set() -> None:
    assert colour_mode("auto", {"COLORTERM": "truecolor"}) == "truecolor"
    assert colour_mode("auto", {}) == "256"
    assert colour_mode("truecolor", {}) == "truecolor"


@pytest.mark.parametrize(
    ("tiles", "size", "shape"),
    [
        (1, (80, 24), (1, 1)),
        (2, (200, 50), (2, 1)),
        (2, (60, 40), (1, 2)),
        (3, (80, 24), (2, 2)),
        (4, (200, 50), (2, 2)),
        (5, (80, 24), (3, 2)),
        (6, (200, 50), (3, 2)),
    ],
)
def test_grid_shape(tiles: int, size: tuple[int, int], shape: tuple[int, int]) -> None:
    assert grid_shape(tiles, *size) == shape


def test_visible_slots_reach_the_highest_occupied_slot() -> None:
    assert visible_slots(set()) == 1
    assert visible_slots({1, 2}) == 2
    assert visible_slots({5}) == 5
    assert visible_slots({6}, capacity=4) == 4


def test_every_label_exists_in_both_languages_with_the_same_fields() -> None:
    fields = string.Formatter()
    for key, (en, id_) in i18n.STRINGS.items():
        assert en.strip() and id_.strip(), f"{key} is empty in a language"
        names_en = {f for _, f, _, _ in fields.parse(en) if f}
        names_id = {f for _, f, _, _ in fields.parse(id_) if f}
        assert names_en == names_id, f"{key}: fields differ {names_en} vs {names_id}"
    for spec in OFFICER_KEYS + SUPERVISOR_KEYS:
        assert spec.label in i18n.STRINGS and spec.help in i18n.STRINGS


def test_language_switch_changes_labels() -> None:
    try:
        i18n.set_language("id")
        assert i18n.t("key.approve") == "Setujui"
        assert i18n.step_label("family_card") == "Kartu Keluarga (KK)"
        assert i18n.reason_label("document missing") == "dokumen tidak ada"
        with pytest.raises(ValueError, match="language"):
            i18n.set_language("fr")
    finally:
        i18n.set_language("en")
    assert i18n.t("key.approve") == "Approve"


def test_supervisor_keys_have_no_mutating_action() -> None:
    for spec in SUPERVISOR_KEYS:
        assert spec.action.split("(")[0] not in MUTATING_ACTIONS, spec.action


def test_tile_text_marks_on_air_silence_and_current_step() -> None:
    steps = [("identity", "approved"), ("membership", "sending"), ("family_card", "pending")]
    text = checklist(steps, 1)  # the server's current step: the first still pending
    assert "✔ID" in text and "[reverse]▶…Member[/reverse]" in text and "·KK" in text
    quiet = meta_line(TileInfo("A", steps, silent_s=400, silence_level="red"))
    assert "06:40!!" in quiet, quiet
    on_air = meta_line(TileInfo("A", steps, on_air=True, silent_s=0.0))
    assert "ON AIR" in on_air
    graded = meta_line(TileInfo("A", steps, link_state="connected", grade="fair", rtt_ms=84.4))
    assert "fair 84ms" in graded


def test_compact_checklist_and_away_fit_a_narrow_tile() -> None:
    steps = [("identity", "approved"), ("membership", "rejected"), ("family_card", "pending")]
    assert checklist_compact(steps, 2) == "✔✘· 1/3 [reverse]▶KK[/reverse]"
    away = meta_line(TileInfo("A", steps, link_state="reconnecting", away_since=0.0))
    assert "away since" in away and "reconnecting" not in away


@pytest.mark.parametrize(
    ("src", "tile", "picture"),
    [
        ((640, 480), (160, 40), (107, 40)),  # 4:3 in a wide tile: bars left and right
        ((640, 480), (40, 40), (40, 15)),  # in a tall tile: bars above and below
        ((640, 480), (80, 30), (80, 30)),  # exactly 4:3 in pixels (80 x 60)
    ],
)
def test_fit_keeps_the_pictures_shape(
    src: tuple[int, int], tile: tuple[int, int], picture: tuple[int, int]
) -> None:
    assert fit(*src, *tile) == picture


def test_snapshots_are_private_under_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAPAK_SNAPSHOT_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    folder = default_snapshot_dir()
    assert folder == tmp_path / "state" / "lapak" / "snapshots"
    write_private(folder / "V1.png", b"png")
    assert stat.S_IMODE((folder / "V1.png").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    monkeypatch.setenv("LAPAK_SNAPSHOT_DIR", str(tmp_path / "demo"))
    assert default_snapshot_dir() == tmp_path / "demo", "the demo's knob"
