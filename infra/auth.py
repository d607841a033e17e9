"""Who is calling: JWT verification into an `Identity`, and dev tokens for `loom token`.

Without `LOOM_JWT_SECRET` (and without `LOOM_JWT_PUBLIC_KEY`) the composition
root asks `with_generated_secret` for a random HS256 secret kept in a file of
the data directory (`jwt-secret` beside the SQLite database, mode 0600), made
on first start and read on every later one, so `loom serve` and `loom token`
agree and no secret is ever written in the source.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from infra.key_file import read_or_make
from infra.settings import Settings

TENANT_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_REQUIRED_CLAIMS = ("exp", "sub", "tenant_id")
# A JWT is a header; no honest one comes near this, and it bounds the work a garbage one costs.
_MAX_TOKEN_CHARS = 8192
_MAX_SUB_CHARS = 256


class Identity(msgspec.Struct, frozen=True):
    """The verified caller: the tenant everything is scoped to and the acting subject."""

    tenant: str
    sub: str


class Verified(msgspec.Struct, frozen=True):
    """A token that verified: the caller, and when the token stops vouching for them."""

    identity: Identity
    expires_at: float  # the token's `exp`, in seconds since the epoch


class AuthError(Exception):
    """A token was refused; `detail` says why, in words safe to show the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


_VERIFIED_CAPACITY = 10_000


class TokenVerifier:
    """Verifies bearer JWTs with the keys named in `Settings`.

    With `jwt_public_key` set, only RS256 (RSA key) or ES256 (P-256 key) tokens
    are accepted and HS256 is refused, so the public key can never double as an
    HMAC secret; without it, only HS256 with `jwt_secret` (and with no secret at
    all, nothing verifies). With `jwt_max_ttl_s`, a token whose lifetime (`exp`
    minus `iat`, or minus now without `iat`) is longer is refused.
    """

    def __init__(self, settings: Settings) -> None:
        self._key: Any
        if settings.jwt_public_key is not None:
            self._key, algorithm = _load_public_key(settings.jwt_public_key)
            self._algorithms = [algorithm]
        else:
            # An empty HMAC key would verify tokens anyone can sign: no secret, no tokens.
            self._key = settings.jwt_secret or None
            self._algorithms = ["HS256"]
        self._max_ttl_s = settings.jwt_max_ttl_s
        # Verifying a signature costs ~0.5 ms; a client sends the same token on every
        # request. A token that verified is trusted again until its `exp`, not after.
        self._verified: OrderedDict[str, Verified] = OrderedDict()

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The only signing algorithms a token may use."""
        return tuple(self._algorithms)

    def verify(self, token: str | None) -> Identity:
        """Return the caller's `Identity`, or raise `AuthError` for any token not fit to trust."""
        return self.verify_token(token).identity

    def verify_token(self, token: str | None) -> Verified:
        """As `verify`, with the token's expiry (a WebSocket ends when its token does)."""
        if not token or not token.strip():
            raise AuthError("missing bearer token")
        if len(token) > _MAX_TOKEN_CHARS:
            raise AuthError("malformed token")
        token = token.strip()
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at > time.time():
                return known
            del self._verified[token]
        claims = self._decode(token)
        identity = Identity(tenant=_tenant(claims), sub=_sub(claims))
        verified = Verified(identity, float(claims["exp"]))
        self._check_lifetime(claims, verified.expires_at)
        self._verified[token] = verified
        if len(self._verified) > _VERIFIED_CAPACITY:
            self._verified.popitem(last=False)
        return verified

    def _check_lifetime(self, claims: dict[str, Any], expires_at: float) -> None:
        if self._max_ttl_s is None:
            return
        issued = claims.get("iat")
        # PyJWT has already refused an `iat` that is not a number.
        start = float(issued) if isinstance(issued, int | float) else time.time()
        if expires_at - start > self._max_ttl_s:
            raise AuthError(
                f"token lifetime exceeds the maximum of {self._max_ttl_s} s (LOOM_JWT_MAX_TTL)"
            )

    def _decode(self, token: str) -> dict[str, Any]:
        if self._key is None:
            raise AuthError("no JWT secret is configured: this Loom accepts no token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options={"require": list(_REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the required claim {exc.claim!r}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.InvalidAlgorithmError:
            allowed = " or ".join(self._algorithms)
            raise AuthError(f"token algorithm not allowed (expected {allowed})") from None
        except jwt.exceptions.InvalidSubjectError:
            raise AuthError("token claim 'sub' must be a string") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        except (ValueError, TypeError):
            # Defensive: a crafted header can reach key handling with odd types.
            raise AuthError("malformed token") from None
        return claims


def mint_token(secret: str, tenant: str, sub: str, ttl_s: int = 86400) -> str:
    """Sign an HS256 dev token for `tenant`/`sub` valid for `ttl_s` seconds."""
    if not is_valid_tenant_id(tenant):
        raise ValueError(f"tenant id must match {TENANT_ID_PATTERN.pattern}, got {tenant!r}")
    if not sub:
        raise ValueError("sub must not be empty")
    if not secret:
        raise ValueError("no JWT secret to sign with")
    now = int(time.time())
    claims = {"sub": sub, "tenant_id": tenant, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")


GENERATED_SECRET_FILE = "jwt-secret"
_GENERATED_SECRET_BYTES = 32


def data_directory(database_url: str) -> Path:
    """Where Loom keeps its own files: beside the SQLite database, else `./data`."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///").split("?")[0]
        if path and not path.startswith(":memory:"):
            return Path(path).parent
    return Path("data")


def with_generated_secret(settings: Settings) -> Settings:
    """`settings` verifying with the data directory's generated secret, when none is set.

    Only when neither `LOOM_JWT_SECRET` nor `LOOM_JWT_PUBLIC_KEY` is set: the
    secret is read from `<data dir>/jwt-secret`, made (32 random bytes, mode
    0600) if missing. Raises `OSError` when the file cannot be read or made and
    `ValueError` when it holds no usable secret.
    """
    if not settings.jwt_secret_is_dev or settings.jwt_public_key is not None:
        return settings
    secret = generated_secret(data_directory(settings.database_url))
    return msgspec.structs.replace(settings, jwt_secret=secret)


def generated_secret(directory: Path) -> str:
    """The secret kept in `directory/jwt-secret`, made on first use (safe when racing)."""
    path = directory / GENERATED_SECRET_FILE
    secret = read_or_make(path, lambda: secrets.token_urlsafe(_GENERATED_SECRET_BYTES))
    if len(secret) < _GENERATED_SECRET_BYTES:
        raise ValueError(f"{path} holds no usable secret: delete it to make a new one")
    return secret


def is_valid_tenant_id(value: object) -> bool:
    """Whether `value` may name a tenant (it ends up in schemas, subjects and paths)."""
    return isinstance(value, str) and TENANT_ID_PATTERN.fullmatch(value) is not None


def _tenant(claims: dict[str, Any]) -> str:
    tenant = claims["tenant_id"]
    if not isinstance(tenant, str):
        raise AuthError("token claim 'tenant_id' must be a string")
    if not is_valid_tenant_id(tenant):
        raise AuthError(f"token claim 'tenant_id' must match {TENANT_ID_PATTERN.pattern}")
    return tenant


def _sub(claims: dict[str, Any]) -> str:
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub.strip():
        raise AuthError("token claim 'sub' must be a non-empty string")
    if len(sub) > _MAX_SUB_CHARS:
        raise AuthError("token claim 'sub' is too long")
    return sub


def _load_public_key(pem: str) -> tuple[RSAPublicKey | EllipticCurvePublicKey, str]:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(f"LOOM_JWT_PUBLIC_KEY is not a PEM public key: {exc}") from None
    if isinstance(key, RSAPublicKey):
        return key, "RS256"
    if isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
        return key, "ES256"
    raise ValueError("LOOM_JWT_PUBLIC_KEY must be an RSA or a P-256 EC public key")
