"""Safe defaults: a generated secret per data directory, token lifetimes, escaped CLI output."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from infra.auth import (
    GENERATED_SECRET_FILE,
    AuthError,
    TokenVerifier,
    data_directory,
    generated_secret,
    mint_token,
    with_generated_secret,
)
from infra.settings import Settings
from services.cli import is_loopback, main
from services.tools.printable import printable, printable_json

SECRET = "a-test-secret-that-is-long-enough-for-hs256-and-for-hs512-too-0123456789"

# --- the generated secret -------------------------------------------------------------


def test_a_secret_is_generated_once_per_data_directory_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    first = generated_secret(tmp_path / "data")
    path = tmp_path / "data" / GENERATED_SECRET_FILE

    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert generated_secret(tmp_path / "data") == first  # reused on the next start
    assert generated_secret(tmp_path / "elsewhere") != first
    assert [p.name for p in (tmp_path / "data").iterdir()] == [GENERATED_SECRET_FILE]


def test_a_file_without_a_usable_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / GENERATED_SECRET_FILE).write_text("short\n")
    with pytest.raises(ValueError, match="delete it"):
        generated_secret(tmp_path)


@pytest.mark.parametrize(
    ("url", "directory"),
    [
        ("sqlite:///data/loom.db", Path("data")),
        ("sqlite:////srv/loom/state/loom.db", Path("/srv/loom/state")),
        ("postgresql://loom@db:5432/loom", Path("data")),
    ],
)
def test_the_data_directory_is_beside_the_sqlite_database(url: str, directory: Path) -> None:
    assert data_directory(url) == directory


def test_the_generated_secret_fills_in_only_when_no_key_is_configured(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/loom.db"
    unset = with_generated_secret(Settings.from_env({"LOOM_DATABASE_URL": url}))
    assert unset.jwt_secret == generated_secret(tmp_path)
    assert unset.jwt_secret_is_dev

    operator = Settings.from_env({"LOOM_DATABASE_URL": url, "LOOM_JWT_SECRET": SECRET})
    assert with_generated_secret(operator).jwt_secret == SECRET

    (tmp_path / GENERATED_SECRET_FILE).unlink()
    keyed = Settings.from_env({"LOOM_DATABASE_URL": url, "LOOM_JWT_PUBLIC_KEY": "pem"})
    assert with_generated_secret(keyed) is keyed
    assert not (tmp_path / GENERATED_SECRET_FILE).exists()


def _hs256(key: bytes, claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_without_any_secret_no_token_verifies_not_even_one_signed_with_an_empty_key() -> None:
    claims = {"sub": "mallory", "tenant_id": "acme", "exp": int(time.time()) + 60}
    verifier = TokenVerifier(Settings())
    with pytest.raises(AuthError):
        verifier.verify(_hs256(b"", claims))
    with pytest.raises(ValueError):
        mint_token("", "acme", "mallory")


# --- token lifetimes ------------------------------------------------------------------


def _capped(max_ttl_s: int) -> TokenVerifier:
    return TokenVerifier(
        Settings(jwt_secret=SECRET, jwt_secret_is_dev=False, jwt_max_ttl_s=max_ttl_s)
    )


def test_a_token_living_longer_than_the_cap_is_refused() -> None:
    verifier = _capped(600)
    with pytest.raises(AuthError, match="lifetime exceeds the maximum of 600 s"):
        verifier.verify(mint_token(SECRET, "acme", "alice", ttl_s=3600))
    assert verifier.verify(mint_token(SECRET, "acme", "alice", ttl_s=600)).sub == "alice"


def test_without_iat_the_lifetime_counts_from_now() -> None:
    verifier = _capped(600)
    far = jwt.encode(
        {"sub": "a", "tenant_id": "acme", "exp": int(time.time()) + 3600}, SECRET, "HS256"
    )
    near = jwt.encode(
        {"sub": "a", "tenant_id": "acme", "exp": int(time.time()) + 300}, SECRET, "HS256"
    )
    with pytest.raises(AuthError, match="lifetime"):
        verifier.verify(far)
    assert verifier.verify(near).tenant == "acme"


def test_without_a_cap_any_lifetime_passes_and_the_expiry_is_known() -> None:
    verifier = TokenVerifier(Settings(jwt_secret=SECRET, jwt_secret_is_dev=False))
    token = mint_token(SECRET, "acme", "alice", ttl_s=10 * 365 * 86400)
    verified = verifier.verify_token(token)
    assert verified.identity.sub == "alice"
    assert verified.expires_at == pytest.approx(time.time() + 10 * 365 * 86400, abs=5)
    assert verifier.verify_token(token) == verified  # the cached path says the same


# --- the command line -----------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("LOOM_JWT_SECRET", "LOOM_JWT_PUBLIC_KEY", "LOOM_JWT_MAX_TTL", "LOOM_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOOM_DATABASE_URL", f"sqlite:///{tmp_path}/data/loom.db")
    return tmp_path / "data"


def test_loom_token_signs_with_the_generated_secret_every_time(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--tenant", "acme", "--sub", "alice"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["token", "--tenant", "acme"]) == 0
    second = capsys.readouterr().out.strip()

    verifier = TokenVerifier(Settings(jwt_secret=generated_secret(env), jwt_secret_is_dev=True))
    assert verifier.verify(first).sub == "alice"
    assert verifier.verify(second).tenant == "acme"


def test_loom_token_keeps_within_the_lifetime_cap(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOOM_JWT_MAX_TTL", "900")
    assert main(["token", "--tenant", "acme"]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, generated_secret(env), algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 900
    assert main(["token", "--tenant", "acme", "--ttl", "3600"]) == 2
    assert "LOOM_JWT_MAX_TTL" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "loom.example.com"])
def test_the_generated_secret_never_listens_beyond_loopback(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    monkeypatch.setenv("LOOM_HOST", host)
    assert main(["serve", "all"]) == 2
    err = capsys.readouterr().err
    assert f"LOOM_HOST={host}" in err and "LOOM_JWT_SECRET" in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# --- control characters in what the tools print --------------------------------------


def test_every_control_character_is_escaped_for_a_terminal() -> None:
    hostile = "alice\x1b[2K\r\n2024-01-01 forged line\x07\x00\x7f\x9b31m\tok"
    shown = printable(hostile)
    assert shown == "alice\\x1b[2K\\r\\n2024-01-01 forged line\\x07\\x00\\x7f\\x9b31m\\tok"
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert printable("héllo → wörld ✓") == "héllo → wörld ✓"


def test_json_output_stays_json_of_the_same_values() -> None:
    value = {"sub": "a\x1b[31m\n\x7f\x85\x9b", "ok": "✓"}
    text = printable_json(json.dumps(value, ensure_ascii=False))
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)
    assert json.loads(text) == value
