"""Loom's configuration: one typed object, read from the environment once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import msgspec

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_DEFAULT_DATABASE_URL = "sqlite:///data/loom.db"
_DEFAULT_HOST = "127.0.0.1"
_DEFAULT_PORT = 8000
_DEFAULT_LOG_LEVEL = "info"
# Per-tenant fairness limits (0: none); above what one tenant drives in `bench.api_bench`.
_DEFAULT_TENANT_MAX_RUNNING = 10_000
_DEFAULT_TENANT_STARTS_PER_S = 2000.0
_SECRET_FIELDS = frozenset({"jwt_secret", "llm_api_key", "secrets_key"})
# The HTTP edge: how long a client may take to send a request's headers and its
# body, and how large its headers (request line included) may be.
_DEFAULT_HTTP_HEADER_TIMEOUT_S = 10.0
_DEFAULT_HTTP_BODY_TIMEOUT_S = 30.0
_DEFAULT_HTTP_MAX_HEADER_BYTES = 32 * 1024


class SettingsError(ValueError):
    """An environment variable holds a value Loom cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting Loom reads from its environment (`LOOM_*`).

    Build it with `Settings.from_env()` in the composition root and pass it down;
    no other module reads `os.environ` for these.
    """

    database_url: str = _DEFAULT_DATABASE_URL
    nats_url: str | None = None
    # Empty until the composition root fills in the data directory's generated secret
    # (`infra.auth.with_generated_secret`) when LOOM_JWT_SECRET is unset; empty verifies nothing.
    jwt_secret: str = ""
    jwt_secret_is_dev: bool = True  # LOOM_JWT_SECRET is unset
    jwt_public_key: str | None = None
    jwt_max_ttl_s: int | None = None  # longest token lifetime accepted; None: no cap
    # The master key of tenants' secrets (base64 of 32 bytes); None: the embedded
    # default's key file under the data directory.
    secrets_key: str | None = None
    host: str = _DEFAULT_HOST
    port: int = _DEFAULT_PORT
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    http_allow: tuple[str, ...] = ()
    http_header_timeout_s: float = _DEFAULT_HTTP_HEADER_TIMEOUT_S
    http_body_timeout_s: float = _DEFAULT_HTTP_BODY_TIMEOUT_S
    http_max_header_bytes: int = _DEFAULT_HTTP_MAX_HEADER_BYTES
    log_level: str = _DEFAULT_LOG_LEVEL
    tenant_max_running: int = _DEFAULT_TENANT_MAX_RUNNING
    tenant_starts_per_s: float = _DEFAULT_TENANT_STARTS_PER_S
    tenant_starts_burst: int | None = None  # None: twice tenant_starts_per_s
    max_result_bytes: int = 1 << 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Read the settings from `env`; unset or empty variables take their defaults.

        Raises `SettingsError` when a value is present but unusable (a port that is
        not a number, an unknown log level).
        """

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        secret = get("LOOM_JWT_SECRET")
        return cls(
            database_url=get("LOOM_DATABASE_URL") or _DEFAULT_DATABASE_URL,
            nats_url=get("LOOM_NATS_URL"),
            jwt_secret=secret or "",
            jwt_secret_is_dev=secret is None,
            jwt_public_key=_pem(get("LOOM_JWT_PUBLIC_KEY")),
            jwt_max_ttl_s=_whole_number("LOOM_JWT_MAX_TTL", get("LOOM_JWT_MAX_TTL"), 1, "seconds"),
            secrets_key=get("LOOM_SECRETS_KEY"),
            host=get("LOOM_HOST") or _DEFAULT_HOST,
            port=_port(get("LOOM_PORT")),
            llm_base_url=get("LOOM_LLM_BASE_URL"),
            llm_api_key=get("LOOM_LLM_API_KEY"),
            http_allow=_comma_list(get("LOOM_HTTP_ALLOW")),
            http_header_timeout_s=_timeout_s(
                "LOOM_HTTP_HEADER_TIMEOUT",
                get("LOOM_HTTP_HEADER_TIMEOUT"),
                _DEFAULT_HTTP_HEADER_TIMEOUT_S,
            ),
            http_body_timeout_s=_timeout_s(
                "LOOM_HTTP_BODY_TIMEOUT",
                get("LOOM_HTTP_BODY_TIMEOUT"),
                _DEFAULT_HTTP_BODY_TIMEOUT_S,
            ),
            http_max_header_bytes=_whole_number(
                "LOOM_HTTP_MAX_HEADER_BYTES", get("LOOM_HTTP_MAX_HEADER_BYTES"), 1024, "bytes"
            )
            or _DEFAULT_HTTP_MAX_HEADER_BYTES,
            log_level=_log_level(get("LOOM_LOG_LEVEL")),
            tenant_max_running=int(
                _at_least(
                    "LOOM_TENANT_MAX_RUNNING",
                    get("LOOM_TENANT_MAX_RUNNING"),
                    _DEFAULT_TENANT_MAX_RUNNING,
                    0,
                    whole=True,
                )
            ),
            tenant_starts_per_s=_at_least(
                "LOOM_TENANT_STARTS_PER_S",
                get("LOOM_TENANT_STARTS_PER_S"),
                _DEFAULT_TENANT_STARTS_PER_S,
                0,
            ),
            tenant_starts_burst=_optional_int_at_least(
                "LOOM_TENANT_STARTS_BURST", get("LOOM_TENANT_STARTS_BURST"), 1
            ),
            max_result_bytes=int(
                _at_least(
                    "LOOM_MAX_RESULT_BYTES", get("LOOM_MAX_RESULT_BYTES"), 1 << 20, 1024, whole=True
                )
            ),
        )

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: never print the secrets themselves.
        shown = {
            name: "***" if name in _SECRET_FIELDS and getattr(self, name) else getattr(self, name)
            for name in self.__struct_fields__
        }
        shown["database_url"] = _without_password(self.database_url)
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _pem(value: str | None) -> str | None:
    # A PEM squeezed onto one line (as .env files and CI secrets often hold it)
    # carries literal "\n" sequences instead of newlines.
    if value is not None and "\n" not in value:
        value = value.replace("\\n", "\n")
    return value


def _port(value: str | None) -> int:
    if value is None:
        return _DEFAULT_PORT
    try:
        port = int(value)
    except ValueError:
        raise SettingsError(f"LOOM_PORT must be a number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"LOOM_PORT must be between 0 and 65535, got {port}")
    return port


def _comma_list(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _log_level(value: str | None) -> str:
    level = (value or _DEFAULT_LOG_LEVEL).lower()
    if level not in _LOG_LEVELS:
        allowed = ", ".join(_LOG_LEVELS)
        raise SettingsError(f"LOOM_LOG_LEVEL must be one of {allowed}, got {value!r}")
    return level


def _at_least(
    name: str, value: str | None, default: float, least: float, *, whole: bool = False
) -> float:
    if value is None:
        return default
    try:
        number = float(int(value)) if whole else float(value)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise SettingsError(f"{name} must be {kind}, got {value!r}") from None
    if not number >= least or number == float("inf"):
        raise SettingsError(f"{name} must be a finite number of at least {least:g}, got {value!r}")
    return number


def _optional_int_at_least(name: str, value: str | None, least: int) -> int | None:
    if value is None:
        return None
    return int(_at_least(name, value, least, least, whole=True))


def _whole_number(name: str, value: str | None, least: int, unit: str) -> int | None:
    """A whole number of `unit`s, at least `least`; None when unset."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of {unit}, got {value!r}") from None
    if number < least:
        raise SettingsError(f"{name} must be at least {least} {unit}, got {number}")
    return number


def _timeout_s(name: str, value: str | None, default: float) -> float:
    """A positive, finite number of seconds."""
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise SettingsError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds
