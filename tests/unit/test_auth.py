"""TokenVerifier against the tokens an attacker (or a sloppy client) would send."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from infra.auth import AuthError, Identity, TokenVerifier, mint_token
from infra.settings import Settings

SECRET = "a-test-secret-that-is-long-enough-for-hs256-and-for-hs512-too-0123456789"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "alice", "tenant_id": "acme", "exp": int(time.time()) + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _public_pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def hs_verifier() -> TokenVerifier:
    return TokenVerifier(Settings(jwt_secret=SECRET, jwt_secret_is_dev=False))


@pytest.fixture
def rs_verifier(rsa_key: rsa.RSAPrivateKey) -> TokenVerifier:
    return TokenVerifier(Settings(jwt_secret=SECRET, jwt_public_key=_public_pem(rsa_key)))


def _refused(verifier: TokenVerifier, token: Any) -> str:
    with pytest.raises(AuthError) as refused:
        verifier.verify(token)
    return refused.value.detail


def test_a_good_hs256_token_names_tenant_and_subject(hs_verifier: TokenVerifier) -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    assert hs_verifier.verify(token) == Identity(tenant="acme", sub="alice")


def test_a_minted_dev_token_is_accepted(hs_verifier: TokenVerifier) -> None:
    assert hs_verifier.verify(mint_token(SECRET, "acme", "bob")) == Identity("acme", "bob")


def test_minting_refuses_a_bad_tenant_id() -> None:
    with pytest.raises(ValueError):
        mint_token(SECRET, "../acme", "bob")


@pytest.mark.parametrize("token", [None, "", "   "])
def test_no_token_is_refused(hs_verifier: TokenVerifier, token: str | None) -> None:
    assert "missing" in _refused(hs_verifier, token)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "a.b", "Bearer x", "é" * 40, "x" * 10_000])
def test_garbage_is_refused(hs_verifier: TokenVerifier, token: str) -> None:
    _refused(hs_verifier, token)


def test_alg_none_is_refused(hs_verifier: TokenVerifier) -> None:
    token = _unsigned({"alg": "none", "typ": "JWT"}, _claims()) + "."
    _refused(hs_verifier, token)


def test_alg_none_is_refused_when_a_public_key_is_configured(rs_verifier: TokenVerifier) -> None:
    token = _unsigned({"alg": "none", "typ": "JWT"}, _claims()) + "."
    _refused(rs_verifier, token)


def test_a_token_signed_with_another_secret_is_refused(hs_verifier: TokenVerifier) -> None:
    token = jwt.encode(_claims(), "another-secret-that-is-long-enough-for-hs256", algorithm="HS256")
    assert "signature" in _refused(hs_verifier, token)


def test_a_tampered_payload_is_refused(hs_verifier: TokenVerifier) -> None:
    header, _, signature = jwt.encode(_claims(), SECRET, algorithm="HS256").split(".")
    forged_payload = _b64(json.dumps(_claims(tenant_id="victim")).encode())
    _refused(hs_verifier, f"{header}.{forged_payload}.{signature}")


def test_hs256_signed_with_the_public_key_pem_is_refused(
    rs_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The classic key-confusion attack: the public key is public, so an HS256
    # token keyed with its PEM bytes must never verify.
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, _claims())
    mac = hmac.new(_public_pem(rsa_key).encode(), signing_input.encode(), hashlib.sha256)
    token = f"{signing_input}.{_b64(mac.digest())}"
    assert "algorithm" in _refused(rs_verifier, token)


def test_hs256_with_the_shared_secret_is_refused_once_a_public_key_is_set(
    rs_verifier: TokenVerifier,
) -> None:
    _refused(rs_verifier, jwt.encode(_claims(), SECRET, algorithm="HS256"))


def test_rs256_is_accepted_with_the_public_key(
    rs_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(_claims(), rsa_key, algorithm="RS256")
    assert rs_verifier.verify(token) == Identity(tenant="acme", sub="alice")


def test_rs256_signed_by_another_key_is_refused(rs_verifier: TokenVerifier) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _refused(rs_verifier, jwt.encode(_claims(), other, algorithm="RS256"))


def test_rs256_is_refused_without_a_public_key(
    hs_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert "algorithm" in _refused(hs_verifier, jwt.encode(_claims(), rsa_key, algorithm="RS256"))


def test_es256_is_accepted_with_an_ec_public_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = TokenVerifier(Settings(jwt_public_key=_public_pem(ec_key)))
    token = jwt.encode(_claims(), ec_key, algorithm="ES256")
    assert verifier.verify(token) == Identity(tenant="acme", sub="alice")


def test_an_unusable_public_key_fails_at_start() -> None:
    with pytest.raises(ValueError):
        TokenVerifier(Settings(jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope\n"))


def test_an_expired_token_is_refused(hs_verifier: TokenVerifier) -> None:
    token = jwt.encode(_claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256")
    assert "expired" in _refused(hs_verifier, token)


@pytest.mark.parametrize("claim", ["sub", "tenant_id", "exp"])
def test_a_token_missing_a_required_claim_is_refused(
    hs_verifier: TokenVerifier, claim: str
) -> None:
    claims = _claims()
    del claims[claim]
    assert claim in _refused(hs_verifier, jwt.encode(claims, SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "tenant",
    ["../acme", "acme/../../etc", "Acme", "a" * 64, "", "-acme", "_acme", "ac me", "acme\n", 7],
)
def test_a_tenant_id_outside_the_pattern_is_refused(
    hs_verifier: TokenVerifier, tenant: Any
) -> None:
    _refused(hs_verifier, jwt.encode(_claims(tenant_id=tenant), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("tenant", ["a", "acme", "a" * 63, "0tenant_x-1"])
def test_a_tenant_id_inside_the_pattern_is_accepted(
    hs_verifier: TokenVerifier, tenant: str
) -> None:
    token = jwt.encode(_claims(tenant_id=tenant), SECRET, algorithm="HS256")
    assert hs_verifier.verify(token).tenant == tenant


@pytest.mark.parametrize("sub", [42, ["alice"], {"name": "alice"}, "", "   "])
def test_a_sub_that_is_not_a_non_empty_string_is_refused(
    hs_verifier: TokenVerifier, sub: Any
) -> None:
    _refused(hs_verifier, jwt.encode(_claims(sub=sub), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("exp", ["tomorrow", [1]])
def test_a_non_numeric_exp_is_refused(hs_verifier: TokenVerifier, exp: Any) -> None:
    _refused(hs_verifier, jwt.encode(_claims(exp=exp), SECRET, algorithm="HS256"))


def test_a_token_that_verified_once_is_refused_once_it_expires(hs_verifier: TokenVerifier) -> None:
    token = jwt.encode(_claims(exp=int(time.time()) + 1), SECRET, algorithm="HS256")
    assert hs_verifier.verify(token).tenant == "acme"
    time.sleep(1.2)
    assert "expired" in _refused(hs_verifier, token)
