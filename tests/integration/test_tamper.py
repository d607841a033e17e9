"""Tamper evidence: every stored event is chained to the one before it by a hash.

Rows of real executions are edited directly in SQLite and in PostgreSQL (a byte
of a state changed, a row deleted, a row inserted), and `loom audit --verify`
must name the first event that was altered, removed or inserted.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import psycopg
import pytest

from domain.events import NodeCompleted, NodeSkipped
from domain.ports import Append, ConcurrencyError
from infra.settings import Settings
from infra.store import codec, open_event_store
from infra.store.naming import events_table
from infra.store.postgres import parse_postgres_url
from services.bootstrap import Loom
from services.cli import main
from services.tools.audit import verify_chain
from tests.support import contract_example

AT = "2025-01-01T00:00:00.000000Z"

PROCESS: dict[str, Any] = contract_example()
SCORE_DONE = 5  # ExecutionStarted, start executing and completed, score executing, score completed


# --- real stores ------------------------------------------------------------------------


class Rows:
    """Direct access to one tenant's events table, beside Loom (as an intruder would)."""

    def __init__(self, url: str, tenant: str) -> None:
        self.table = events_table(tenant)
        if url.startswith("sqlite"):
            self.db: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.mark, self.name = "?", self.table
            self.key: Callable[[uuid.UUID], Any] = lambda stream: stream.hex
        else:
            params, schema = parse_postgres_url(url)
            self.db = psycopg.connect(
                dbname=params.dbname,
                host=params.host,
                port=params.port,
                user=params.user,
                password=params.password,
                autocommit=True,
            )
            self.mark, self.name = "%s", f"{schema}.{self.table}"
            self.key = lambda stream: stream

    def _sql(self, statement: str, *params: Any) -> Any:
        return self.db.execute(statement.replace("?", self.mark).format(t=self.name), params)

    def state(self, stream: uuid.UUID, seq: int) -> bytes:
        row = self._sql(
            "SELECT state FROM {t} WHERE originator_id=? AND originator_version=?",
            self.key(stream),
            seq,
        ).fetchone()
        return bytes(row[0])

    def replace(self, stream: uuid.UUID, seq: int, state: bytes) -> None:
        self._sql(
            "UPDATE {t} SET state=? WHERE originator_id=? AND originator_version=?",
            state,
            self.key(stream),
            seq,
        )

    def delete(self, stream: uuid.UUID, seq: int) -> None:
        self._sql(
            "DELETE FROM {t} WHERE originator_id=? AND originator_version=?", self.key(stream), seq
        )

    def insert(self, stream: uuid.UUID, seq: int, state: bytes) -> None:
        """Make room at `seq` (later rows move up one) and put `state` there."""
        for shift, bound in ((1000, seq), (-999, seq + 1000)):
            self._sql(
                "UPDATE {t} SET originator_version=originator_version+? "
                "WHERE originator_id=? AND originator_version>=?",
                shift,
                self.key(stream),
                bound,
            )
        self._sql(
            "INSERT INTO {t} (originator_id, originator_version, topic, state) VALUES (?,?,?,?)",
            self.key(stream),
            seq,
            "NodeSkipped",
            state,
        )

    def close(self) -> None:
        self.db.close()


@pytest.fixture
async def executions(database_url: str) -> list[str]:
    """Four completed executions of the contract's example, each 11 events long."""
    loom = Loom(Settings.from_env({"LOOM_DATABASE_URL": database_url}))
    await loom.start()
    try:
        saved = await loom.processes.save("acme", "alice", PROCESS)
        ids = []
        for amount in (120, 130, 140, 150):
            started = await loom.executions.start(
                "acme", "alice", saved["process_id"], None, {"amount": amount}
            )
            ids.append(started.execution_id)
        for execution_id in ids:
            for _ in range(200):
                status = await loom.executions.status("acme", execution_id)
                if status.status == "completed":
                    break
                await asyncio.sleep(0.025)
            assert status.status == "completed"
    finally:
        await loom.stop()
    return ids


@pytest.fixture
def rows(database_url: str, executions: list[str]) -> Iterator[Rows]:
    access = Rows(database_url, "acme")
    yield access
    access.close()


@pytest.fixture
def verify(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    monkeypatch.setenv("LOOM_DATABASE_URL", database_url)

    def run(execution_id: str, *extra: str) -> tuple[int, str]:
        capsys.readouterr()
        command = extra or ("audit", "--verify")
        code = main([*command, "--tenant", "acme", execution_id])
        return code, capsys.readouterr().out

    return run


def test_untouched_executions_verify_intact(
    executions: list[str], verify: Callable[..., tuple[int, str]]
) -> None:
    for execution_id in executions:
        code, out = verify(execution_id)
        assert code == 0
        assert out.startswith("intact: 11 events, every hash chains; head ")


def test_a_byte_changed_in_a_stored_state_is_named_as_altered(
    executions: list[str], rows: Rows, verify: Callable[..., tuple[int, str]]
) -> None:
    stream = uuid.UUID(executions[0])
    state = rows.state(stream, SCORE_DONE)
    assert b'"score":240' in state
    rows.replace(stream, SCORE_DONE, state.replace(b'"score":240', b'"score":241'))

    code, out = verify(executions[0])
    assert code == 1
    assert out.startswith(f"tampered: first bad event {SCORE_DONE} (altered)")

    code, out = verify(executions[0], "replay")  # and the decisions no longer match either
    assert code == 1
    assert out.startswith(f"diverges at event {SCORE_DONE}: the decision differs")
    assert '"score":241' in out.splitlines()[1] and '"score":240' in out.splitlines()[2]
    assert verify(executions[1])[0] == 0  # the other executions are untouched


def test_a_byte_changed_in_the_seal_itself_is_named_as_altered(
    executions: list[str], rows: Rows, verify: Callable[..., tuple[int, str]]
) -> None:
    stream = uuid.UUID(executions[0])
    state = bytearray(rows.state(stream, 8))
    state[-21] = ord("0") if state[-21] != ord("0") else ord("1")  # the hash's last digit
    rows.replace(stream, 8, bytes(state))

    code, out = verify(executions[0])

    assert code == 1 and out.startswith("tampered: first bad event 8 (altered)")


def test_a_deleted_row_is_named_as_removed(
    executions: list[str], rows: Rows, verify: Callable[..., tuple[int, str]]
) -> None:
    stream = uuid.UUID(executions[1])
    rows.delete(stream, 7)

    code, out = verify(executions[1])

    assert code == 1
    assert out.startswith("tampered: first bad event 7 (removed): event 7 is missing")


def test_an_inserted_row_is_named_as_inserted(
    executions: list[str], rows: Rows, verify: Callable[..., tuple[int, str]]
) -> None:
    stream = uuid.UUID(executions[2])
    forged = NodeCompleted(at=AT, actor="mallory", element="score", output={"score": 9999})
    rows.insert(stream, 6, codec.encode(forged)[1])

    code, out = verify(executions[2])
    assert code == 1
    assert out.startswith("tampered: first bad event 6 (inserted)")

    # The same insertion with a hash computed the way Loom would: still found.
    previous = codec.unseal(rows.state(stream, 5)).hash
    assert previous is not None
    rows.replace(stream, 6, codec.seal(codec.encode(forged)[1], previous)[0])
    code, out = verify(executions[2])
    assert code == 1
    assert out.startswith("tampered: first bad event 6 (inserted)")


def test_verify_reports_json_and_other_tenants_are_not_found(
    executions: list[str], verify: Callable[..., tuple[int, str]]
) -> None:
    code, out = verify(executions[3], "audit", "--verify", "--json")
    report = msgspec.json.decode(out)
    assert code == 0
    assert report["intact"] and report["events"] == report["sealed"] == 11
    assert report["first_break"] is None and len(report["head"]) == 64

    code = main(["audit", "--verify", "--tenant", "globex", executions[3]])
    assert code == 2


def test_appends_chain_across_batches_streams_and_transactions(database_url: str) -> None:
    store = open_event_store(database_url)
    try:
        a, b = uuid.uuid4(), uuid.uuid4()

        def skipped(key: str) -> NodeSkipped:
            return NodeSkipped(at=AT, actor="alice", element=key)

        store.append("acme", [Append(a, 0, [skipped("a1"), skipped("a2")])])
        # One transaction: two streams, one of them twice (the group commit's shape).
        store.append(
            "acme",
            [
                Append(b, 0, [skipped("b1")]),
                Append(a, 2, [skipped("a3")]),
                Append(a, 3, [skipped("a4"), skipped("a5")]),
            ],
        )
        with pytest.raises(ConcurrencyError):
            store.append("acme", [Append(a, 3, [skipped("stale")])])
        store.append("acme", [Append(b, 1, [skipped("b2")])])

        for stream, count in ((a, 5), (b, 2)):
            states = store.read_states("acme", stream)  # type: ignore[attr-defined]
            report = verify_chain(stream, states)
            assert report.intact and report.events == count
            decoded = [r.event for r in store.read("acme", stream)]
            assert [codec.decode(s) for _, s in states] == decoded  # the seal decodes away
    finally:
        store.close()


def test_a_row_that_no_longer_decodes_is_shown_named_and_refused_cleanly(
    executions: list[str], rows: Rows, verify: Callable[..., tuple[int, str]]
) -> None:
    stream = uuid.UUID(executions[3])
    rows.replace(stream, 4, rows.state(stream, 4)[:40])  # cut short: not JSON any more

    code, out = verify(executions[3], "audit")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines() if "Unreadable" in line] == [["4", "?"]]
    code, out = verify(executions[3])
    assert code == 1 and out.startswith("tampered: first bad event 4 (altered)")
    for command in (("replay",), ("state",)):
        assert verify(executions[3], *command) == (2, "")
