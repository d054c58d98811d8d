"""TURN REST credentials (signaling/ice.py), the ``[ice]`` config and the welcome's
``ice_servers``. The real coturn accepting them is tests/test_turn.py."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from lapak.signaling.config import ConfigError, IceServerSpec, ServerConfig
from lapak.signaling.ice import IcePolicy, load_ice, turn_credential, turn_username
from lapak.signaling.messages import IceServer, Welcome, decode_server, encode
from tests.hub_driver import NOW, HubDriver

SECRET = "coturn-shared-secret"


def test_credential_matches_a_vector_computed_by_hand() -> None:
    # printf '%s' '1700003600:booth-7' \
    #   | openssl dgst -sha1 -hmac coturn-shared-secret -binary | base64
    assert turn_credential(SECRET, "1700003600:booth-7") == "BF6Eg0sh55BTtGy2Ve7Jh+cVdAE="


def test_username_is_expiry_then_subject() -> None:
    assert turn_username("booth-7", 1_700_000_000.7, 3600) == "1700003600:booth-7"


def test_policy_gives_turn_servers_fresh_credentials_and_keeps_the_rest() -> None:
    policy = IcePolicy(
        (
            IceServerSpec(urls=["stun:stun.example.org:3478"]),
            IceServerSpec(urls=["turn:turn.example.org:3478?transport=udp"]),
            IceServerSpec(urls=["turn:static.example.org"], username="u", credential="p"),
        ),
        turn_secret=SECRET,
        turn_ttl_s=3600,
    )
    stun, turn, static = policy.for_client("booth-7", 1_700_000_000)
    assert stun == IceServer(urls=["stun:stun.example.org:3478"])
    assert turn.username == "1700003600:booth-7"
    assert turn.credential == "BF6Eg0sh55BTtGy2Ve7Jh+cVdAE="
    assert (static.username, static.credential) == ("u", "p")
    # STUN carries no credential fields at all on the wire
    assert '"username"' not in encode(stun)


def test_without_a_secret_turn_servers_get_no_credentials() -> None:
    policy = IcePolicy((IceServerSpec(urls=["turn:t.example.org"]),))
    assert policy.for_client("x", NOW) == [IceServer(urls=["turn:t.example.org"])]


def test_ice_config_is_read_and_checked(tmp_path: Path) -> None:
    secret = tmp_path / "turn.secret"
    secret.write_text(SECRET + "\n")
    path = tmp_path / "server.toml"
    path.write_text(
        '[ice]\nturn_secret_file = "turn.secret"\nturn_ttl_s = 600\n'
        '[[ice.servers]]\nurls = ["stun:10.0.0.1:3478"]\n'
        '[[ice.servers]]\nurls = ["turn:10.0.0.1:3478?transport=udp", '
        '"turn:10.0.0.1:3478?transport=tcp"]\n'
    )
    config = ServerConfig.load(path)
    policy = load_ice(config.ice)
    assert policy.turn_secret == SECRET  # the file's trailing newline is not part of it
    assert policy.turn_ttl_s == 600
    assert [s.urls[0] for s in policy.servers] == [
        "stun:10.0.0.1:3478",
        "turn:10.0.0.1:3478?transport=udp",
    ]
    assert ServerConfig().ice.servers == []  # none by default: LAN only


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[[ice.servers]]\nurls = ["http://x"]\n', "[ice"),
        ("[[ice.servers]]\nurls = []\n", "[ice"),
        ("[ice]\nturn_ttl_s = 0\n", "turn_ttl_s"),
        ("[ice]\nsecret = 1\n", "secret"),
    ],
)
def test_bad_ice_config_is_refused_by_name(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        ServerConfig.load(path)
    assert expected in str(caught.value), f"expected {expected!r} named in: {caught.value}"


def test_missing_or_empty_secret_file_is_a_config_error(tmp_path: Path) -> None:
    config = ServerConfig.from_dict({"ice": {"turn_secret_file": str(tmp_path / "none")}})
    with pytest.raises(ConfigError, match="turn_secret_file"):
        load_ice(config.ice)
    (tmp_path / "empty").write_text("\n")
    config = ServerConfig.from_dict({"ice": {"turn_secret_file": str(tmp_path / "empty")}})
    with pytest.raises(ConfigError, match="empty"):
        load_ice(config.ice)


def test_welcome_carries_per_client_ice_servers() -> None:
    driver = HubDriver()
    _, plain = driver.hello("booth", booth="b1")
    assert plain["ice_servers"] == [], f"no [ice] config: an empty list, got {plain}"
    driver.hub.ice = IcePolicy((IceServerSpec(urls=["turn:10.0.0.1:3478"]),), SECRET, 60)
    _, welcome = driver.hello("booth", sub="booth-7", booth="b1")
    expiry = int(driver.now + 60)
    assert welcome["ice_servers"] == [
        {
            "urls": ["turn:10.0.0.1:3478"],
            "username": f"{expiry}:booth-7",
            "credential": turn_credential(SECRET, f"{expiry}:booth-7"),
        }
    ]
    typed = decode_server(msgspec.json.encode(welcome))
    assert isinstance(typed, Welcome) and typed.ice_servers[0].username == f"{expiry}:booth-7"


def test_check_config_names_a_missing_turn_secret_file(tmp_path: Path) -> None:
    from tests.test_config import check_config

    conf = tmp_path / "server.toml"
    conf.write_text(
        '[server]\ndata_dir = "data"\nsecret_file = "secret"\n'
        '[ice]\nturn_secret_file = "missing.secret"\n'
        '[[ice.servers]]\nurls = ["turn:10.0.0.1:3478"]\n'
    )
    code, problems, _ = check_config(tmp_path, "--config", str(conf))
    assert code == 1, f"a missing TURN secret file fails the check: {problems}"
    assert any("turn_secret_file" in p and "missing.secret" in p for p in problems), problems
