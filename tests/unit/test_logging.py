"""configure_logging: structlog and stdlib records both come out as JSON lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from infra.logging import configure_logging


@pytest.fixture
def json_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info")
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_structlog_lines_carry_context_level_and_timestamp(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    structlog.contextvars.bind_contextvars(tenant_id="acme", request_id="r1")
    structlog.get_logger("loom.test").info("execution_started", execution_id="e1")
    [line] = _lines(capsys.readouterr().out)
    assert line["event"] == "execution_started"
    assert (line["tenant_id"], line["request_id"], line["execution_id"]) == ("acme", "r1", "e1")
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")


def test_stdlib_records_of_other_libraries_are_json_too(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    [line] = _lines(capsys.readouterr().out)
    assert line["event"] == "Started server process [42]"
    assert line["logger"] == "uvicorn.error"


def test_exceptions_carry_their_traceback(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        structlog.get_logger("loom.test").exception("failed")
    [line] = _lines(capsys.readouterr().out)
    assert "ValueError: bad" in str(line["exception"])


def test_debug_is_dropped_at_info(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    structlog.get_logger("loom.test").debug("noise")
    assert capsys.readouterr().out == ""


def test_configuring_twice_does_not_double_lines(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info")
    structlog.get_logger("loom.test").info("once")
    assert len(_lines(capsys.readouterr().out)) == 1


def test_tokens_in_logged_urls_are_redacted(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]',
        "127.0.0.1:5000",
        "/ws/executions/e1?token=eyJ.abc.def&x=1",
    )
    [line] = _lines(capsys.readouterr().out)
    assert "eyJ" not in str(line["event"])
    assert "/ws/executions/e1?token=***&x=1" in str(line["event"])
