"""Settings read once from an environment mapping."""

from __future__ import annotations

import pytest

from infra.settings import Settings, SettingsError


def test_an_empty_environment_gives_the_embedded_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///data/loom.db"
    assert settings.nats_url is None
    assert settings.jwt_secret_is_dev
    # No secret in the source: the composition root generates one per data directory.
    assert settings.jwt_secret == ""
    assert settings.jwt_public_key is None
    assert settings.jwt_max_ttl_s is None
    assert (settings.http_header_timeout_s, settings.http_body_timeout_s) == (10.0, 30.0)
    assert settings.http_max_header_bytes == 32 * 1024
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert (settings.llm_base_url, settings.llm_api_key) == (None, None)
    assert settings.http_allow == ()
    assert settings.log_level == "info"


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "LOOM_DATABASE_URL": "postgresql://loom@db:5432/loom",
            "LOOM_NATS_URL": "nats://bus:4222",
            "LOOM_JWT_SECRET": "s3cret",
            "LOOM_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----",
            "LOOM_HOST": "0.0.0.0",
            "LOOM_PORT": "9001",
            "LOOM_LLM_BASE_URL": "http://llm.local/v1",
            "LOOM_LLM_API_KEY": "sk-test",
            "LOOM_HTTP_ALLOW": "api.example.com, *.example.org,,",
            "LOOM_LOG_LEVEL": "DEBUG",
            "LOOM_JWT_MAX_TTL": "900",
            "LOOM_HTTP_HEADER_TIMEOUT": "2.5",
            "LOOM_HTTP_BODY_TIMEOUT": "7",
            "LOOM_HTTP_MAX_HEADER_BYTES": "16384",
        }
    )
    assert settings.database_url == "postgresql://loom@db:5432/loom"
    assert settings.nats_url == "nats://bus:4222"
    assert (settings.jwt_secret, settings.jwt_secret_is_dev) == ("s3cret", False)
    assert settings.jwt_public_key == ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
    assert (settings.host, settings.port) == ("0.0.0.0", 9001)
    assert settings.llm_base_url == "http://llm.local/v1"
    assert settings.llm_api_key == "sk-test"
    assert settings.http_allow == ("api.example.com", "*.example.org")
    assert settings.log_level == "debug"
    assert settings.jwt_max_ttl_s == 900
    assert (settings.http_header_timeout_s, settings.http_body_timeout_s) == (2.5, 7.0)
    assert settings.http_max_header_bytes == 16384


def test_empty_variables_count_as_unset() -> None:
    settings = Settings.from_env({"LOOM_JWT_SECRET": "", "LOOM_NATS_URL": " "})
    assert settings.jwt_secret_is_dev
    assert settings.nats_url is None


@pytest.mark.parametrize(
    "env",
    [
        {"LOOM_PORT": "eighty"},
        {"LOOM_PORT": "70000"},
        {"LOOM_LOG_LEVEL": "loud"},
        {"LOOM_JWT_MAX_TTL": "0"},
        {"LOOM_JWT_MAX_TTL": "1h"},
        {"LOOM_HTTP_HEADER_TIMEOUT": "0"},
        {"LOOM_HTTP_BODY_TIMEOUT": "inf"},
        {"LOOM_HTTP_BODY_TIMEOUT": "soon"},
        {"LOOM_HTTP_MAX_HEADER_BYTES": "100"},
    ],
)
def test_unusable_values_are_refused_at_start(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_the_repr_hides_secrets() -> None:
    settings = Settings.from_env(
        {
            "LOOM_JWT_SECRET": "s3cret",
            "LOOM_LLM_API_KEY": "sk-test",
            "LOOM_DATABASE_URL": "postgresql://loom:hunter2@db/loom",
        }
    )
    shown = repr(settings)
    assert "s3cret" not in shown
    assert "sk-test" not in shown
    assert "hunter2" not in shown
    assert "postgresql://loom:***@db/loom" in shown
