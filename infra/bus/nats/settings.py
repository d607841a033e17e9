"""Where NATS is and how Loom names and times its streams there: `NatsSettings`.

Read from `LOOM_NATS_URL`, `nats://host:4222[,nats://other:4222][?prefix=P&ack_wait=S]`:
the prefix keeps deployments (and tests) sharing one server apart; `ack_wait` is how
long an engine may go silent before its work items go to another engine. A plain value,
apart from the client: a bad URL is refused before anything connects.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

import msgspec

_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,32}")
_DAY_S = 24 * 3600.0


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where NATS is and how Loom names and times its streams there."""

    servers: tuple[str, ...]
    prefix: str = "loom"
    ack_wait: float = 30.0
    duplicate_window: float = 120.0
    events_max_age: float = _DAY_S  # transport only: the store keeps everything

    @classmethod
    def from_url(cls, url: str) -> NatsSettings:
        """`nats://host:port[,nats://host2:port][?prefix=P&ack_wait=S]`."""
        base, _, query = url.partition("?")
        servers = tuple(s.strip() for s in base.split(",") if s.strip())
        if not servers or not all(s.startswith(("nats://", "tls://")) for s in servers):
            raise ValueError(f"not a nats:// URL: {url!r}")
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        prefix = params.get("prefix", "loom")
        if _PREFIX.fullmatch(prefix) is None:
            raise ValueError(f"invalid NATS prefix {prefix!r}: must match {_PREFIX.pattern}")
        ack_wait = float(params.get("ack_wait", 30.0))
        if not 0.5 <= ack_wait <= 3600:
            raise ValueError(f"ack_wait must be between 0.5 and 3600 s, got {ack_wait}")
        return cls(servers=servers, prefix=prefix, ack_wait=ack_wait)

    @property
    def events_stream(self) -> str:
        return f"{self.prefix}_events"

    @property
    def work_stream(self) -> str:
        return f"{self.prefix}_work"
