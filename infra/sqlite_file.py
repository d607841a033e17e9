"""One SQLite file (WAL) used from many threads: a connection per thread, short transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from domain.ports import StoreUnavailable


class SQLiteFile:
    def __init__(self, path: str, *, synchronous: str | None = None) -> None:
        self._path = path
        self._synchronous = synchronous
        self._local = threading.local()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction on this thread's connection; a locked or broken file is StoreUnavailable.

        Writers take the write lock at once (BEGIN IMMEDIATE); readers read a WAL
        snapshot alongside the writer instead of queueing behind it.
        """
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield db
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreUnavailable(str(exc)) from exc
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            if self._synchronous is not None:
                db.execute(f"PRAGMA synchronous={self._synchronous}")
            self._local.db = db
        return db
