"""NATS JetStream adapters: the relay's publisher, the projector's and engines' consumers,
the gateway's live feed; one module per noun.

- `settings`: `NatsSettings`, from `LOOM_NATS_URL`;
- `subjects`: the subjects and message ids (decided there and nowhere else);
- `codec`: the `Envelope` an event travels in;
- `client`: `NatsClient`, the connection, and the streams it declares;
- `publisher`: `JetStreamPublisher` (the relay);
- `feed`: `NatsEventFeed` (the gateway);
- `pull`: the durable pull loop under both consumers;
- `consumer`: `EventConsumer` (the projector);
- `work_queue`: `WorkQueue` and `WorkItem` (the engines).

The names are re-exported here: import them from `infra.bus.nats`.
"""

from infra.bus.nats.client import NatsClient
from infra.bus.nats.codec import Envelope, decode_event, encode_event
from infra.bus.nats.consumer import EventConsumer, TenantBatch
from infra.bus.nats.feed import FeedUnavailable, NatsEventFeed
from infra.bus.nats.publisher import JetStreamPublisher, PublishFailed
from infra.bus.nats.settings import NatsSettings
from infra.bus.nats.subjects import (
    event_msg_id,
    event_subject,
    wake_subject,
    work_msg_id,
    work_subject,
)
from infra.bus.nats.work_queue import WorkItem, WorkQueue

__all__ = [
    "Envelope",
    "EventConsumer",
    "FeedUnavailable",
    "JetStreamPublisher",
    "NatsClient",
    "NatsEventFeed",
    "NatsSettings",
    "PublishFailed",
    "TenantBatch",
    "WorkItem",
    "WorkQueue",
    "decode_event",
    "encode_event",
    "event_msg_id",
    "event_subject",
    "wake_subject",
    "work_msg_id",
    "work_subject",
]
