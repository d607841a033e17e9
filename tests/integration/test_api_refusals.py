"""The REST API over HTTP, on SQLite and on a real PostgreSQL: every definition rule
(refused with 422 naming the `key`, and nothing saved), and bodies no client should
ever be able to turn into a 500 (not JSON, not UTF-8, wrong types, too large).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.api import ALICE, create, everything_saved, finished, start
from tests.harness.looms import Client
from tests.support import contract_example

# The contract's own example.
EXAMPLE: dict[str, Any] = contract_example()


# --- definition rules: 422 naming the key, nothing saved ----------------------------


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    change(body["threads"][0])
    return body


def _element(thread: dict[str, Any], key: str) -> dict[str, Any]:
    return next(e for e in thread["elements"] if e["key"] == key)


def _set(thread: dict[str, Any], key: str, **fields: Any) -> None:
    _element(thread, key).update(fields)


RULES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "a key repeats": (
        _broken(lambda t: t["elements"].append({"key": "score", "type": "end"})),
        {"score"},
    ),
    "a connection names a missing element": (
        _broken(lambda t: t["connections"].append({"source": "yes", "target": "ghost"})),
        {"ghost"},
    ),
    "a type is unknown": (_broken(lambda t: _set(t, "no", type="teleport")), {"no"}),
    "transform params of the wrong type": (
        _broken(lambda t: _set(t, "score", params={"output": 5})),
        {"score"},
    ),
    "a condition without its expression": (_broken(lambda t: _set(t, "big", params={})), {"big"}),
    "a delay of no number": (
        _broken(
            lambda t: t["elements"].append(
                {"key": "nap", "type": "delay", "params": {"seconds": "soon"}}
            )
        ),
        {"nap"},
    ),
    "an http element without a url": (
        _broken(
            lambda t: t["elements"].append(
                {"key": "call", "type": "http", "params": {"method": "GET"}}
            )
        ),
        {"call"},
    ),
    "an unknown param": (
        _broken(lambda t: _set(t, "big", params={"expression": "true", "colour": "red"})),
        {"big"},
    ),
    "a condition expression does not compile": (
        _broken(lambda t: _set(t, "big", params={"expression": "input.score >"})),
        {"big"},
    ),
    "a transform expression does not compile": (
        _broken(lambda t: _set(t, "score", params={"output": {"score": "input.amount * ("}})),
        {"score"},
    ),
    "a thread without a trigger": (
        _broken(lambda t: _set(t, "start", type="transform", params={"expression": "input"})),
        {"main"},
    ),
    "a thread with two triggers": (
        _broken(lambda t: t["elements"].append({"key": "again", "type": "trigger"})),
        {"again"},
    ),
    "a condition's connection without source_port": (
        _broken(lambda t: t["connections"][2].pop("source_port")),
        {"big"},
    ),
    "a condition's connection on a port it lacks": (
        _broken(lambda t: t["connections"][3].update(source_port="maybe")),
        {"big"},
    ),
    "a cycle": (
        _broken(lambda t: t["connections"].append({"source": "yes", "target": "score"})),
        {"score", "big", "yes"},
    ),
}


@pytest.mark.parametrize("rule", RULES)
async def test_a_definition_breaking_a_rule_is_422_naming_the_key_and_saves_nothing(
    client: Client, rule: str
) -> None:
    body, keys = RULES[rule]
    kept = await create(client, {**EXAMPLE, "project": "Kept"})
    before = await everything_saved(client)

    created = await client.post("/api/v1/processes", json=body, headers=ALICE)
    updated = await client.put(
        f"/api/v1/processes/{kept}", json={**body, "expected_version": 1}, headers=ALICE
    )

    for response in (created, updated):
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str)
        assert response.json()["key"] in keys, response.json()
    assert await everything_saved(client) == before


async def test_a_definition_without_a_usable_name_or_thread_is_422(client: Client) -> None:
    for change in ({"project": ""}, {"name": "   "}, {"app": "x" * 201}, {"threads": []}):
        body = {**EXAMPLE, **change}
        response = await client.post("/api/v1/processes", json=body, headers=ALICE)
        assert response.status_code == 422, change

    assert (await client.get("/api/v1/processes", headers=ALICE)).json() == []


# --- bodies no client can turn into a 500 -------------------------------------------

JSON = {"Content-Type": "application/json"}
DEEP = "[" * 100_000 + "]" * 100_000
BAD_BODIES = {
    "malformed JSON": b'{"project": "Sales", ',
    "not JSON at all": b"hello",
    "an empty body": b"",
    "JSON null": b"null",
    "a JSON array": b"[1, 2]",
    "a JSON string": b'"process"',
    "a NaN": b'{"process_id": NaN, "name": NaN}',
    "a lone surrogate": b'{"process_id": "\\ud800", "name": "\\ud800"}',
    "deeply nested": ('{"process_id": "x", "name": "x", "input": ' + DEEP + "}").encode(),
    "deeply nested threads": (
        '{"project": "p", "app": "a", "name": "n", "threads": ' + DEEP + "}"
    ).encode(),
}
WRONG_TYPES: dict[str, list[Any]] = {
    "/api/v1/processes": [
        {**EXAMPLE, "project": 1},
        {**EXAMPLE, "threads": "main"},
        {**EXAMPLE, "threads": [1]},
        {**EXAMPLE, "threads": [{"key": "main", "elements": "start"}]},
        {**EXAMPLE, "threads": [{"key": "main", "elements": [{"key": 1, "type": "trigger"}]}]},
        {**EXAMPLE, "threads": [{"key": "main", "elements": [{"key": "s", "type": None}]}]},
        {**EXAMPLE, "threads": [{"key": "main", "connections": [{"source": "s"}]}]},
        {
            **EXAMPLE,
            "threads": [{"key": "main", "elements": [{"key": "s", "type": "trigger"}], "x": 1}],
        },
        _broken(lambda t: t["elements"][0].update(colour="red")),
        _broken(lambda t: t["elements"][0].update(position={"x": "left", "y": 0})),
        _broken(lambda t: t["connections"][0].update(weight=3)),
        {**EXAMPLE, "expected_version": "one"},
    ],
    "/api/v1/executions": [
        {"process_id": ["a"]},
        {"process_id": None},
        {},
        {"process_id": "x", "version": 1.5},
        {"process_id": "x", "version": True},
    ],
    "/api/v1/agents": [
        {"name": ["x"], "model": "m"},
        {"name": "x", "model": "m", "temperature": [1]},
        {"name": "x", "model": "m", "max_tokens": 1.5},
        {"name": "x", "model": {"id": "m"}},
    ],
}


BODY_PATHS = ["/api/v1/processes", "/api/v1/executions", "/api/v1/agents"]


@pytest.mark.parametrize("path", BODY_PATHS)
async def test_a_body_that_is_not_the_json_asked_for_is_a_4xx(client: Client, path: str) -> None:
    before = await everything_saved(client)

    for kind, content in BAD_BODIES.items():
        response = await client.post(path, content=content, headers={**ALICE, **JSON})
        assert 400 <= response.status_code < 500, (kind, response.text)
        assert isinstance(response.json()["detail"], str)

    assert await everything_saved(client) == before


# msgspec raises UnicodeDecodeError (not a DecodeError) for invalid UTF-8 inside a string.
@pytest.mark.parametrize("path", BODY_PATHS)
async def test_a_body_that_is_not_utf8_is_a_4xx(client: Client, path: str) -> None:
    content = b'{"process_id": "\xff\xfe", "name": "\xff", "model": "m"}'

    response = await client.post(path, content=content, headers={**ALICE, **JSON})

    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("path", BODY_PATHS)
async def test_a_body_of_the_wrong_types_or_with_unknown_fields_is_a_4xx(
    client: Client, path: str
) -> None:
    before = await everything_saved(client)

    for body in WRONG_TYPES[path]:
        response = await client.post(path, json=body, headers=ALICE)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert isinstance(response.json()["detail"], str)

    assert await everything_saved(client) == before


async def test_a_body_over_one_mebibyte_is_413(client: Client) -> None:
    huge = b'{"name": "' + b"x" * (1024 * 1024 + 1) + b'"}'

    for path in BODY_PATHS:
        response = await client.post(path, content=huge, headers={**ALICE, **JSON})
        assert response.status_code == 413, path
        assert isinstance(response.json()["detail"], str)


async def test_a_put_with_a_bad_body_changes_nothing(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    agent_id = (
        await client.post("/api/v1/agents", json={"name": "A", "model": "m"}, headers=ALICE)
    ).json()["agent_id"]
    before = await everything_saved(client)

    for path in (f"/api/v1/processes/{process_id}", f"/api/v1/agents/{agent_id}"):
        for content in (b"{", b"[]", DEEP.encode(), b'{"name": 1}'):
            response = await client.put(path, content=content, headers={**ALICE, **JSON})
            assert 400 <= response.status_code < 500, (path, content[:20], response.text)

    assert await everything_saved(client) == before


async def test_odd_but_valid_json_is_stored_and_read_back_exactly(client: Client) -> None:
    process_id = await create(client, {**EXAMPLE, "name": "Nul \x00 and émoji 🧵"})
    odd_input = {"amount": 3, "text": "\x00 zero", "big": 2**62, "nested": [[[{"a": None}]]]}

    execution_id = await start(client, process_id, odd_input)

    status = await finished(client, execution_id)
    assert status["status"] == "completed"
    events = (await client.get(f"/api/v1/executions/{execution_id}/events", headers=ALICE)).json()
    assert events[0]["data"]["input"] == odd_input
    document = (await client.get(f"/api/v1/processes/{process_id}", headers=ALICE)).json()
    assert document["name"] == "Nul \x00 and émoji 🧵"
