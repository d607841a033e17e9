"""Structured logging: every log line, ours or a library's, is one JSON object on stdout."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

# Loggers that libraries configure with their own handlers; ours must win.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "nats")
# WebSocket clients pass their JWT as ?token=…, and uvicorn logs the full URL.
_TOKEN_IN_URL = re.compile(r"([?&](?:access_)?token=)[^&\s\"']+")


# A webhook's URL holds its credential: `/hooks/<token>`.
_HOOK_IN_PATH = re.compile(r"(/hooks/)[^/?\s\"']+")


def redact_tokens(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Blank out `token=` query values and webhook tokens, so no log line holds a credential."""
    event = event_dict.get("event")
    if isinstance(event, str) and "token=" in event:
        event = event_dict["event"] = _TOKEN_IN_URL.sub(r"\1***", event)
    if isinstance(event, str) and "/hooks/" in event:
        event_dict["event"] = _HOOK_IN_PATH.sub(r"\1***", event)
    path = event_dict.get("path")
    if isinstance(path, str) and path.startswith("/hooks/"):
        event_dict["path"] = "/hooks/***"
    return event_dict


# Every secret value this process has revealed to an effect: no log line may hold one,
# whoever writes it (an httpx error quoting a URL, a traceback, a library's warning).
_REVEALED: set[str] = set()
_MAX_REVEALED = 100_000


def mask(values: Iterable[str]) -> None:
    """From now on, show each of `values` as `***` in every log line of this process."""
    fresh = {v for v in values if v and v not in _REVEALED}
    if not fresh:
        return
    if len(_REVEALED) + len(fresh) > _MAX_REVEALED:
        _REVEALED.clear()  # bounded; the values in use now are masked again as they are revealed
    _REVEALED.update(fresh)


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace every revealed secret value in the line's strings (tracebacks included)."""
    if not _REVEALED:
        return event_dict
    hidden = sorted(_REVEALED, key=len, reverse=True)
    return {key: _masked(value, hidden) for key, value in event_dict.items()}


def _masked(value: object, hidden: list[str]) -> object:
    if isinstance(value, str):
        for secret in hidden:
            if secret in value:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: _masked(v, hidden) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v, hidden) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _masked(str(value), hidden)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is at the time of each record.

    Test runners and process managers swap `sys.stdout`; a stream captured at
    configure time may be closed by then. Its class also marks the handler we
    install, so a second `configure_logging` replaces it.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        """Format `record` and write it to the current stdout."""
        self.stream = sys.stdout
        super().emit(record)


class _StdoutLogger:
    """Our own loggers' sink: one rendered line to whatever `sys.stdout` is now.

    Structlog's own path (no stdlib LogRecord, msgspec for JSON) costs a few µs a
    line, where the stdlib path costs ~100 µs: it carries every per-request line.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name

    def msg(self, message: str) -> None:
        # No flush of our own: a terminal is line-buffered, a pipe or file takes
        # PYTHONUNBUFFERED=1 when every line must leave at once. A flush per line
        # is a system call per request on the event loop.
        sys.stdout.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stdout_logger(*args: object) -> _StdoutLogger:
    return _StdoutLogger(str(args[0]) if args else "")


def _add_logger_name(logger: WrappedLogger, _: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", "")
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


_json = msgspec.json.Encoder(enc_hook=str)


def _dumps(value: object, **_: object) -> str:
    return _json.encode(value).decode()


def configure_logging(level: str = "info") -> None:
    """Send structlog and stdlib logging to stdout as JSON lines at `level`.

    Each line carries an ISO UTC timestamp, the level, the logger name and
    whatever is bound with `structlog.contextvars.bind_contextvars` (request_id,
    tenant_id, execution_id …). Safe to call more than once. When serving with
    uvicorn, pass `log_config=None` so uvicorn does not install its own handlers.
    """
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_tokens,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_tokens,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        logger_factory=_stdout_logger,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=True,
    )

    # Libraries log through the standard library: their records join the same stream.
    handler = _StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                structlog.processors.JSONRenderer(serializer=_dumps),
            ],
        )
    )

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdoutHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)

    for name in _LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True
