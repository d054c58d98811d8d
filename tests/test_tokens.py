from __future__ import annotations

import time
from pathlib import Path

import pytest

from lapak.signaling.protocol import ErrorCode
from lapak.signaling.tokens import KeyRing, TokenError


def test_roundtrip_carries_role_identity_and_place(keys: KeyRing) -> None:
    token = keys.issue("officer", "ana", "main", desk="d1", ttl=60)
    claims = keys.verify(token)
    assert (claims.role, claims.sub, claims.office, claims.desk) == ("officer", "ana", "main", "d1")
    assert claims.exp > time.time()


def test_expired_forged_and_malformed_tokens_get_their_own_codes(keys: KeyRing) -> None:
    expired = keys.issue("booth", "b1", "main", booth="b1", ttl=10, now=time.time() - 100)
    with pytest.raises(TokenError) as err:
        keys.verify(expired)
    assert err.value.code == ErrorCode.TOKEN_EXPIRED
    forged = KeyRing.generate().issue("admin", "eve", "main")
    with pytest.raises(TokenError) as err:
        keys.verify(forged)
    assert err.value.code == ErrorCode.BAD_SIGNATURE, "an unknown key is a bad signature"
    head, body, sig = keys.issue("admin", "eve", "main").split(".")
    tampered = f"{head}.{body}.{sig[:-4]}AAAA"
    with pytest.raises(TokenError) as err:
        keys.verify(tampered)
    assert err.value.code == ErrorCode.BAD_SIGNATURE, "a tampered signature is a bad signature"
    with pytest.raises(TokenError) as err:
        keys.verify("not-a-token")
    assert err.value.code == ErrorCode.BAD_TOKEN


def test_rotation_old_key_still_verifies(tmp_path: Path) -> None:
    old = KeyRing.generate()
    token = old.issue("supervisor", "sri", "main")
    rotated = KeyRing((KeyRing.generate().keys[0], old.keys[0]))
    path = tmp_path / "secret"
    rotated.write(path)
    assert KeyRing.from_file(path).verify(token).sub == "sri"


def test_roles_need_their_place(keys: KeyRing) -> None:
    with pytest.raises(ValueError):
        keys.issue("officer", "ana", "main")
    with pytest.raises(ValueError):
        keys.issue("booth", "b1", "main")
    with pytest.raises(ValueError):
        keys.issue("janitor", "x", "main")


@pytest.mark.parametrize(
    "claims",
    [{"exp": "123"}, {"iat": None}, {"exp": True}, {"desk": ["d1"]}, {"sub": 7},
     {"office": {"a": 1}}, {"role": ["admin"]}, {"booth": 3}],
)  # fmt: skip
def test_signed_tokens_with_mistyped_claims_are_bad_tokens(keys: KeyRing, claims: dict) -> None:
    import jwt

    from lapak.signaling.tokens import ALGORITHM, key_id

    payload = {"role": "officer", "sub": "ana", "office": "main", "desk": "d1", "iat": 1,
               "exp": 4_000_000_000, **claims}  # fmt: skip
    key = keys.keys[0]
    token = jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})
    with pytest.raises(TokenError) as err:
        keys.verify(token, now=2)
    assert err.value.code == ErrorCode.BAD_TOKEN, claims
