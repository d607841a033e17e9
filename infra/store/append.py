"""The append both event stores share: `ChainedAppend`.

An append is the same on every database: check that each Append's `after` is a head
that exists, fetch the hashes the new events chain over, number and seal the events
(`codec.encode_appends`), insert them in one transaction, and map a key clash (another
writer got there first) to ConcurrencyError. What differs stays in each store's module:
how a tenant's table is found or created, the SQL that reads the heads, the insert's
retries, and which of the database's errors mean "unavailable".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.ports import Append, ConcurrencyError
from infra.store import codec

Partition = TypeVar("Partition")
Head = tuple[UUID, int]


class ChainedAppend(ABC, Generic[Partition]):
    """An event store's `append`, over one partition (table) per tenant.

    Positions are whatever the database numbers the inserted rows with, in insert order.
    """

    def append(self, tenant: str, appends: Sequence[Append]) -> list[int]:
        heads = codec.chain_heads(appends)
        partition = self._partition(tenant)
        if not any(append.events for append in appends):
            return []
        with self._unavailable_on_failure():
            # A stream only grows and a stored event never changes: a head read
            # now is still there, unchanged, at the insert, so this read (which
            # checks the heads exist and fetches the hashes the new events chain
            # over) may run before the write transaction.
            hashes = self._head_hashes(partition, heads) if heads else {}
            if len(hashes) != len(heads):
                raise ConcurrencyError(f"a stream of tenant {tenant!r} has not reached `after`")
            events = codec.encode_appends(appends, hashes)
            try:
                ids = self._insert(partition, events)
            except IntegrityError as error:
                raise ConcurrencyError(f"a stream of tenant {tenant!r} moved on") from error
        assert ids is not None
        return list(ids)

    @abstractmethod
    def _partition(self, tenant: str) -> Partition:
        """The tenant's partition, created on first use (the tenant id is validated)."""

    @abstractmethod
    def _head_hashes(self, partition: Partition, heads: list[Head]) -> dict[Head, str]:
        """The hash each existing head chains its successor over (missing heads are absent)."""

    @abstractmethod
    def _insert(self, partition: Partition, events: list[StoredEvent]) -> Sequence[int] | None:
        """Insert the events in one transaction; their positions, in order.

        A row that exists already raises the library's IntegrityError.
        """

    @abstractmethod
    def _unavailable_on_failure(self) -> AbstractContextManager[None]:
        """The database's connection and locking failures become StoreUnavailable."""
