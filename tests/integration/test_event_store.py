"""Contract tests of the EventStore port, run against every adapter (SQLite, PostgreSQL)."""

from __future__ import annotations

import socket
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.events import AnyEvent, Event, NodeSkipped
from domain.ports import Append, ConcurrencyError, EventStore, StoreUnavailable
from infra.store import PostgresEventStore, SQLiteEventStore, open_event_store
from infra.store.naming import MAX_NAME_LEN, events_table, tenant_table, validate_tenant
from infra.store.postgres import PostgresParams, parse_postgres_url

AT = "2025-01-01T00:00:00Z"


def skipped(element: str, actor: str = "alice") -> NodeSkipped:
    return NodeSkipped(at=AT, actor=actor, element=element)


def sample_value(info: msgspec.inspect.Type) -> Any:
    """A non-default value of a field's type, nested where JSON allows it."""
    match info:
        case msgspec.inspect.StrType():
            return 'text ✓ "quoted"'
        case msgspec.inspect.BoolType():
            return True
        case msgspec.inspect.IntType():
            return 7
        case msgspec.inspect.FloatType():
            return 2.5
        case msgspec.inspect.LiteralType(values=values):
            return values[-1]
        case msgspec.inspect.UnionType(types=types):
            return sample_value(
                next(t for t in types if not isinstance(t, msgspec.inspect.NoneType))
            )
        case msgspec.inspect.ListType(item_type=item):
            return [sample_value(item)]
        case (
            msgspec.inspect.SetType(item_type=item) | msgspec.inspect.FrozenSetType(item_type=item)
        ):
            return {sample_value(item)}
        case msgspec.inspect.DictType(value_type=value):
            return {"key": sample_value(value)}
        case msgspec.inspect.StructType():
            return sample_struct(info)
        case msgspec.inspect.AnyType():
            return {"nested": [1, 2.5, None, True, "s", {"deep": []}]}
    pytest.fail(f"no sample value for {info}: extend sample_value")


def sample_struct(info: msgspec.inspect.StructType) -> Any:
    return info.cls(**{f.name: sample_value(f.type) for f in info.fields})


def one_of_each_event_type() -> list[Event]:
    """An instance of every stored event type, every field set (new types included)."""
    events = []
    for event_type in typing.get_args(AnyEvent):
        info = msgspec.inspect.type_info(event_type)
        assert isinstance(info, msgspec.inspect.StructType)
        events.append(sample_struct(info))
    return events


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        opened: EventStore = SQLiteEventStore(str(tmp_path / "events.db"))
    else:
        opened = PostgresEventStore(
            request.getfixturevalue("postgres_url"),
            schema=request.getfixturevalue("postgres_schema"),
        )
    yield opened
    opened.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- appending and reading ------------------------------------------------------------


def test_every_event_type_round_trips(store: EventStore) -> None:
    events = one_of_each_event_type()
    stream = uuid.uuid4()

    store.append("acme", [Append(stream, 0, events)])

    read = store.read("acme", stream)
    assert [r.event for r in read] == events
    assert all(r.stream_id == stream for r in read)


def test_seq_runs_from_one_without_gaps(store: EventStore) -> None:
    stream = uuid.uuid4()
    store.append("acme", [Append(stream, 0, [skipped("a")])])
    store.append("acme", [Append(stream, 1, [skipped("b"), skipped("c")])])
    store.append("acme", [Append(stream, 3, [skipped("d")])])

    assert [r.seq for r in store.read("acme", stream)] == [1, 2, 3, 4]


def test_read_selects_after_and_upto(store: EventStore) -> None:
    stream = uuid.uuid4()
    store.append("acme", [Append(stream, 0, [skipped(str(i)) for i in range(1, 7)])])

    assert [r.seq for r in store.read("acme", stream, after=2)] == [3, 4, 5, 6]
    assert [r.seq for r in store.read("acme", stream, upto=2)] == [1, 2]
    assert [r.seq for r in store.read("acme", stream, after=2, upto=4)] == [3, 4]
    assert store.read("acme", stream, after=6) == []
    assert store.read("acme", uuid.uuid4()) == []


def test_read_all_orders_every_stream_by_position(store: EventStore) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    positions = store.append("acme", [Append(first, 0, [skipped("f1")])])
    positions += store.append(
        "acme", [Append(second, 0, [skipped("s1")]), Append(first, 1, [skipped("f2")])]
    )
    positions += store.append("acme", [Append(second, 1, [skipped("s2")])])

    everything = store.read_all("acme")

    assert [r.position for r in everything] == positions == sorted(positions)
    assert [(r.stream_id, r.seq, r.event) for r in everything] == [
        (first, 1, skipped("f1")),
        (second, 1, skipped("s1")),
        (first, 2, skipped("f2")),
        (second, 2, skipped("s2")),
    ]
    assert store.max_position("acme") == positions[-1]
    assert store.read_all("acme", after=positions[1]) == everything[2:]


def test_a_large_group_commit_reports_the_position_of_every_event(store: EventStore) -> None:
    # More events than one INSERT statement holds, over many streams, after earlier rows.
    store.append("acme", [Append(uuid.uuid4(), 0, [skipped("before")])])
    streams = [uuid.uuid4() for _ in range(130)]
    appends = [Append(s, 0, [skipped(f"{i}-{n}") for n in range(9)]) for i, s in enumerate(streams)]

    positions = store.append("acme", appends)

    everything = store.read_all("acme", limit=5000)[1:]
    assert len(positions) == 130 * 9
    assert positions == [r.position for r in everything]
    assert [(r.stream_id, r.seq, r.event) for r in everything] == [
        (s, n + 1, skipped(f"{i}-{n}")) for i, s in enumerate(streams) for n in range(9)
    ]


def test_read_all_pages_across_the_gaps_failed_appends_leave(store: EventStore) -> None:
    stream = uuid.uuid4()
    store.append("acme", [Append(stream, 0, [skipped("1"), skipped("2")])])
    with pytest.raises(ConcurrencyError):
        store.append("acme", [Append(stream, 0, [skipped("x"), skipped("y"), skipped("z")])])
    store.append("acme", [Append(stream, 2, [skipped(str(i)) for i in range(3, 8)])])

    seen: list[int] = []
    after = 0
    while page := store.read_all("acme", after=after, limit=2):
        seen += [r.seq for r in page]
        after = page[-1].position

    assert seen == [1, 2, 3, 4, 5, 6, 7]


def test_a_new_tenant_starts_empty(store: EventStore) -> None:
    assert store.read_all("newcomer") == []
    assert store.max_position("newcomer") == 0


# --- optimistic concurrency -------------------------------------------------------------


def test_a_stale_after_is_refused(store: EventStore) -> None:
    stream = uuid.uuid4()
    store.append("acme", [Append(stream, 0, [skipped("a")])])

    with pytest.raises(ConcurrencyError):
        store.append("acme", [Append(stream, 0, [skipped("b")])])

    assert [r.event for r in store.read("acme", stream)] == [skipped("a")]


def test_an_after_beyond_the_end_of_the_stream_is_refused(store: EventStore) -> None:
    stream = uuid.uuid4()
    store.append("acme", [Append(stream, 0, [skipped("a")])])

    with pytest.raises(ConcurrencyError):
        store.append("acme", [Append(stream, 5, [skipped("b")])])

    assert [r.seq for r in store.read("acme", stream)] == [1]


def test_a_multi_stream_append_writes_all_or_nothing(store: EventStore) -> None:
    moving, stale = uuid.uuid4(), uuid.uuid4()
    store.append("acme", [Append(moving, 0, [skipped("m1")]), Append(stale, 0, [skipped("s1")])])
    before = store.max_position("acme")

    with pytest.raises(ConcurrencyError):
        store.append(
            "acme",
            [
                Append(moving, 1, [skipped("m2")]),
                Append(uuid.uuid4(), 0, [skipped("new")]),
                Append(stale, 0, [skipped("s-again")]),
            ],
        )

    assert [r.seq for r in store.read("acme", moving)] == [1]
    assert [r.event for r in store.read("acme", stale)] == [skipped("s1")]
    assert len(store.read_all("acme")) == 2
    assert store.max_position("acme") == before


def test_one_batch_may_append_twice_to_one_stream(store: EventStore) -> None:
    stream = uuid.uuid4()
    store.append("acme", [Append(stream, 0, [skipped("a")]), Append(stream, 1, [skipped("b")])])

    assert [r.seq for r in store.read("acme", stream)] == [1, 2]


def test_two_threads_appending_after_the_same_seq_conflict(store: EventStore) -> None:
    for round_ in range(10):
        stream = uuid.uuid4()
        store.append("acme", [Append(stream, 0, [skipped("first")])])
        barrier = threading.Barrier(2)

        def save(who: str, stream: uuid.UUID = stream, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                store.append("acme", [Append(stream, 1, [skipped(who), skipped(who + "+")])])
            except ConcurrencyError:
                return "conflict"
            return "saved"

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(save, ["left", "right"]))

        assert outcomes == ["conflict", "saved"], f"round {round_}"
        assert [r.seq for r in store.read("acme", stream)] == [1, 2, 3]


# --- tenants ---------------------------------------------------------------------------


def test_tenants_never_see_each_others_events(store: EventStore) -> None:
    stream = uuid.uuid4()
    store.append("a-b", [Append(stream, 0, [skipped("hyphen", actor="ann")])])
    store.append("a_b", [Append(stream, 0, [skipped("underscore", actor="bob")])])
    store.append("a_b", [Append(uuid.uuid4(), 0, [skipped("more", actor="bob")])])

    assert [r.event.actor for r in store.read("a-b", stream)] == ["ann"]
    assert [r.event.actor for r in store.read("a_b", stream)] == ["bob"]
    assert {r.event.actor for r in store.read_all("a-b")} == {"ann"}
    assert {r.event.actor for r in store.read_all("a_b")} == {"bob"}
    assert len(store.read_all("a_b")) == 2
    assert {"a-b", "a_b"} <= set(store.tenants())


BAD_TENANTS = ["../x", "A", "a b", "a;drop", "a" * 64, "", "-a", "_a", "a\n", "é"]


@pytest.mark.parametrize("tenant", BAD_TENANTS)
def test_bad_tenant_ids_are_refused(store: EventStore, tenant: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.append(tenant, [Append(uuid.uuid4(), 0, [skipped("x")])]),
        lambda: store.read(tenant, uuid.uuid4()),
        lambda: store.read_all(tenant),
        lambda: store.max_position(tenant),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert tenant not in store.tenants()


@pytest.mark.parametrize("tenant", BAD_TENANTS)
def test_bad_tenant_ids_are_refused_before_any_sql(tmp_path: Path, tenant: str) -> None:
    # Stores that fail on any I/O: a ValueError proves nothing was attempted.
    unreachable: list[EventStore] = [
        SQLiteEventStore(str(tmp_path / "missing-dir" / "events.db")),
        PostgresEventStore(PostgresParams("loom", port=closed_port()), connect_timeout=0.2),
    ]
    for store in unreachable:
        with pytest.raises(ValueError):
            store.append(tenant, [Append(uuid.uuid4(), 0, [skipped("x")])])
        with pytest.raises(ValueError):
            store.read(tenant, uuid.uuid4())
        store.close()


def test_valid_tenant_ids_are_accepted() -> None:
    for tenant in ["a", "0", "acme", "a-b_c", "a" * 63, "9_-"]:
        assert validate_tenant(tenant) == tenant


def test_names_for_similar_and_long_tenant_ids_are_distinct() -> None:
    long_a, long_b = "x" * 60 + "-aa", "x" * 60 + "-ab"
    tenants = ["a-b", "a_b", "a__b", "a_hb", "ab", "a-_b", "a_-b", long_a, long_b, "a" * 63]
    names = [events_table(t) for t in tenants]

    assert len(set(names)) == len(tenants)
    assert events_table("a-b") != events_table("a_b")
    assert events_table(long_a) != events_table(long_b)
    assert tenant_table("acme", "events") == events_table("acme") != tenant_table("acme", "status")
    for name in names:
        assert len(name) <= MAX_NAME_LEN
        assert name.replace("_", "").isalnum() and name.islower()


def _decode_unhashed(name: str) -> tuple[str, str] | None:
    """(kind, tenant) if `name` reads as an unhashed table name, else None."""
    kind, _, escaped = name.removeprefix("t_").partition("_")
    tenant, i = "", 0
    while i < len(escaped):
        if escaped[i] != "_":
            tenant, i = tenant + escaped[i], i + 1
        elif escaped[i : i + 2] in ("__", "_h"):
            tenant, i = tenant + ("_" if escaped[i + 1] == "_" else "-"), i + 2
        else:
            return None
    return kind, tenant


TENANT_IDS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)


@given(TENANT_IDS, TENANT_IDS)
def test_table_names_are_injective(first: str, second: str) -> None:
    if first != second:
        assert events_table(first) != events_table(second)


@given(TENANT_IDS)
def test_a_table_name_reads_back_as_its_tenant_or_not_at_all(tenant: str) -> None:
    # An unhashed name decodes to its own tenant; a hashed one decodes to
    # nothing, so no crafted short id can take a long id's table.
    decoded = _decode_unhashed(events_table(tenant))
    assert decoded is None or decoded == ("events", tenant)


def test_a_hashed_name_cut_inside_an_escape_does_not_read_as_another_tenant() -> None:
    for padding in range(1, 20):
        tenant = "a" * padding + "_" * 40
        assert _decode_unhashed(events_table(tenant)) is None


# --- PostgreSQL only ---------------------------------------------------------------------


@pytest.mark.postgres
def test_many_tenants_share_one_bounded_pool(
    postgres_url: str,
    postgres_schema: str,
    postgres_connect: Callable[[], psycopg.Connection[tuple[Any, ...]]],
) -> None:
    app = f"loomtest-{uuid.uuid4().hex[:8]}"
    store = PostgresEventStore(postgres_url, schema=postgres_schema, application_name=app)
    tenants = [f"tenant-{i:03d}" for i in range(300)]
    peak, done = [0], threading.Event()

    def watch() -> None:
        with postgres_connect() as conn:
            while not done.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
                ).fetchone()
                assert row is not None
                peak[0] = max(peak[0], row[0])
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:

        def write(tenant: str) -> None:
            store.append(tenant, [Append(uuid.uuid4(), 0, [skipped(tenant)])])
            assert [r.event for r in store.read_all(tenant)] == [skipped(tenant)]

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(write, tenants))
    finally:
        done.set()
        watcher.join()

    assert store.tenants() == tenants
    assert 0 < peak[0] <= 20
    assert store.pool.get_stats()["pool_size"] <= 20
    store.close()


def test_store_unavailable_when_postgres_is_unreachable() -> None:
    store = PostgresEventStore(PostgresParams("loom", port=closed_port()), connect_timeout=0.5)
    started = time.monotonic()

    with pytest.raises(StoreUnavailable):
        store.append("acme", [Append(uuid.uuid4(), 0, [skipped("x")])])
    with pytest.raises(StoreUnavailable):
        store.read_all("acme")
    with pytest.raises(StoreUnavailable):
        store.tenants()

    assert time.monotonic() - started < 10
    store.close()


def test_store_unavailable_when_the_sqlite_file_cannot_be_opened(tmp_path: Path) -> None:
    store = SQLiteEventStore(str(tmp_path / "missing-dir" / "events.db"))

    with pytest.raises(StoreUnavailable):
        store.append("acme", [Append(uuid.uuid4(), 0, [skipped("x")])])
    store.close()


# --- opening by URL ----------------------------------------------------------------------


def test_sqlite_urls_open_relative_and_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_event_store("sqlite:///data/nested/loom.db")
    absolute = open_event_store(f"sqlite:///{tmp_path}/abs/loom.db")
    for opened in (relative, absolute):
        assert isinstance(opened, SQLiteEventStore)
        opened.append("acme", [Append(uuid.uuid4(), 0, [skipped("x")])])
        opened.close()

    assert (tmp_path / "data" / "nested" / "loom.db").exists()
    assert (tmp_path / "abs" / "loom.db").exists()


def test_postgres_urls_are_parsed() -> None:
    assert parse_postgres_url("postgresql://bob:s3cr%40t@db.example:6543/loom?schema=x") == (
        PostgresParams("loom", "db.example", 6543, "bob", "s3cr@t"),
        "x",
    )
    assert parse_postgres_url("postgresql://postgres@127.0.0.1/test") == (
        PostgresParams("test", "127.0.0.1", 5432, "postgres", ""),
        None,
    )
    socket_dir = "/tmp/pg sock"
    assert parse_postgres_url(f"postgresql://postgres:@/postgres?host={socket_dir}")[0] == (
        PostgresParams("postgres", socket_dir, 5432, "postgres", "")
    )
    assert parse_postgres_url("postgresql://u@%2Fvar%2Frun%2Fpg:5433/d")[0].host == "/var/run/pg"


@pytest.mark.postgres
def test_a_postgres_url_picks_the_schema(postgres_url: str, postgres_schema: str) -> None:
    separator = "&" if "?" in postgres_url else "?"
    opened = open_event_store(f"{postgres_url}{separator}schema={postgres_schema}")
    assert isinstance(opened, PostgresEventStore)
    assert opened.schema == postgres_schema
    opened.append("acme", [Append(uuid.uuid4(), 0, [skipped("x")])])
    assert opened.tenants() == ["acme"]
    opened.close()


def test_unknown_urls_are_refused() -> None:
    for url in ["mysql://x/y", "sqlite://relative.db", "sqlite:///:memory:"]:
        with pytest.raises(ValueError):
            open_event_store(url)
