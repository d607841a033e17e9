"""Sub-processes and foreach over REST, on SQLite and PostgreSQL: a process calls another
of its tenant, once or once per item, waits for it durably and takes its output; the
two executions link to each other, and cancelling the parent cancels the child."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from domain.children import child_id
from infra.auth import mint_token
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from services.cli import main
from tests.support import SECRET, definition, edge, el

Client = AsyncTestClient[Any]


def auth(tenant: str = "acme", sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, tenant, sub)}"}


ALICE, GLOBEX = auth(), auth(tenant="globex")


def scorer() -> dict[str, Any]:
    """The child: start → score (twice input.amount, or ten times the item) → done."""
    return definition(
        (
            [
                el("start", "trigger"),
                el(
                    "score",
                    "transform",
                    expression="has(input.item) ? {'score': input.item * 10, 'at': input.index}"
                    " : {'score': input.amount * 2}",
                ),
                el("done", "end"),
            ],
            [edge("start", "score"), edge("score", "done")],
        ),
        name="Score",
    )


def failing() -> dict[str, Any]:
    """A child that fails on an odd item: start → odd? → boom (fail) | done."""
    return definition(
        (
            [
                el("start", "trigger"),
                el("odd", "condition", expression="input.item % 2 == 1"),
                el("boom", "fail", message="item {{ input.item }} is odd"),
                el("done", "end"),
            ],
            [edge("start", "odd"), edge("odd", "boom", "true"), edge("odd", "done", "false")],
        ),
        name="Even only",
    )


def waiting() -> dict[str, Any]:
    """A child that waits for a signal "go" and ends with its data."""
    return definition(
        (
            [el("start", "trigger"), el("wait", "signal", name="go"), el("done", "end")],
            [edge("start", "wait"), edge("wait", "done")],
        ),
        name="Wait",
    )


def calling(child: str, **params: Any) -> dict[str, Any]:
    """The parent: start → call (subprocess of `child`) → done; a failure goes to `oops`."""
    return definition(
        (
            [
                el("start", "trigger"),
                el("call", "subprocess", process_id=child, **params),
                el("done", "end"),
                el("oops", "end"),
            ],
            [edge("start", "call"), edge("call", "done"), edge("call", "oops", "error")],
        ),
        name="Caller",
    )


def each(child: str, concurrency: int = 2) -> dict[str, Any]:
    """The parent: start → each (foreach input.items of `child`) → done; error → `oops`."""
    return definition(
        (
            [
                el("start", "trigger"),
                el(
                    "each",
                    "foreach",
                    items="input.items",
                    process_id=child,
                    concurrency=concurrency,
                ),
                el("done", "end"),
                el("oops", "end"),
            ],
            [edge("start", "each"), edge("each", "done"), edge("each", "oops", "error")],
        ),
        name="Each",
    )


@pytest.fixture
def open_loom(database_url: str) -> Callable[[], Any]:
    @asynccontextmanager
    async def open_() -> AsyncIterator[Client]:
        settings = Settings.from_env({"LOOM_DATABASE_URL": database_url, "LOOM_JWT_SECRET": SECRET})
        async with AsyncTestClient(app=web_app(Loom(settings)), raise_server_exceptions=False) as c:
            yield c

    return open_


@pytest.fixture
async def client(open_loom: Callable[[], Any]) -> AsyncIterator[Client]:
    async with open_loom() as c:
        yield c


async def create(client: Client, body: dict[str, Any]) -> str:
    response = await client.post("/api/v1/processes", json=body, headers=ALICE)
    assert response.status_code == 201, response.text
    return str(response.json()["process_id"])


async def start(client: Client, process_id: str, input: Any = None) -> str:
    body = {"process_id": process_id, "input": input}
    response = await client.post("/api/v1/executions", json=body, headers=ALICE)
    assert response.status_code == 202, response.text
    return str(response.json()["execution_id"])


async def status(client: Client, execution_id: str, headers: dict[str, str] = ALICE) -> Any:
    response = await client.get(f"/api/v1/executions/{execution_id}/status", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never: {what}")


async def until_status(client: Client, execution_id: str, *wanted: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal seen
        seen = await status(client, execution_id)
        return seen["status"] in wanted

    try:
        await until(reached, f"execution {execution_id} {' or '.join(wanted)}")
    except AssertionError as never:
        raise AssertionError(f"{never}; last seen: {seen}") from None
    return seen


async def until_node(client: Client, execution_id: str, key: str, field: str) -> dict[str, Any]:
    """The execution's status once its node `key` has `field` set."""
    seen: dict[str, Any] = {}

    async def known() -> bool:
        nonlocal seen
        seen = await status(client, execution_id)
        return bool(seen["nodes"].get(key, {}).get(field))

    await until(known, f"{key}.{field} in {execution_id}")
    return seen


# --- subprocess ---------------------------------------------------------------------------


async def test_a_subprocess_runs_the_child_and_takes_its_output_and_both_link(
    client: Client,
) -> None:
    child_process = await create(client, scorer())
    parent_id = await start(client, await create(client, calling(child_process)), {"amount": 21})

    parent = await until_status(client, parent_id, "completed", "failed")

    assert parent["status"] == "completed", parent
    call = parent["nodes"]["call"]
    assert call["output"] == {"done": {"score": 42}}  # the child's output: by its end
    child_id = call["child_execution_id"]
    child = await until_status(client, child_id, "completed")
    assert child["process_id"] == child_process
    assert child["input"] == {"amount": 21}
    assert child["trigger"] == {"type": "parent"}
    assert child["parent"] == {"execution_id": parent_id, "element": "call"}
    assert parent["parent"] is None


async def test_a_failed_child_fails_the_element_and_its_error_port_takes_it(
    client: Client,
) -> None:
    child_process = await create(client, failing())
    parent_id = await start(
        client, await create(client, calling(child_process, input="{'item': 3}"))
    )

    parent = await until_status(client, parent_id, "completed", "failed")

    assert parent["status"] == "completed"  # the error port caught it
    assert parent["nodes"]["call"]["state"] == "failed"
    assert "item 3 is odd" in parent["nodes"]["call"]["error"]
    assert parent["nodes"]["oops"]["state"] == "completed"
    assert "done" not in parent["nodes"] or parent["nodes"]["done"]["state"] != "completed"
    child = await status(client, parent["nodes"]["call"]["child_execution_id"])
    assert child["status"] == "failed"


async def test_cancelling_a_parent_cancels_the_child_it_waits_for(client: Client) -> None:
    child_process = await create(client, waiting())
    parent_id = await start(client, await create(client, calling(child_process)))
    child_id = (await until_node(client, parent_id, "call", "child_execution_id"))["nodes"]["call"][
        "child_execution_id"
    ]
    await until_node(client, child_id, "wait", "started_at")

    response = await client.post(f"/api/v1/executions/{parent_id}/cancel", headers=ALICE)

    assert response.status_code in (200, 202), response.text
    assert (await until_status(client, parent_id, "cancelled"))["status"] == "cancelled"
    assert (await until_status(client, child_id, "cancelled"))["status"] == "cancelled"


async def test_a_child_past_the_elements_timeout_fails_it_and_is_cancelled(
    client: Client,
) -> None:
    child_process = await create(client, waiting())
    parent_id = await start(client, await create(client, calling(child_process, timeout_s=0.3)))

    parent = await until_status(client, parent_id, "completed", "failed")

    call = parent["nodes"]["call"]
    assert call["state"] == "failed"
    assert call["error"] == "timed out after 0.3 s waiting for its child executions"
    assert parent["nodes"]["oops"]["state"] == "completed"
    child = await until_status(client, call["child_execution_id"], "cancelled", "completed")
    assert child["status"] == "cancelled"


async def test_a_parent_waits_for_its_child_across_a_restart(
    open_loom: Callable[[], Any],
) -> None:
    async with open_loom() as client:
        child_process = await create(client, waiting())
        parent_id = await start(client, await create(client, calling(child_process)))
        child_id = (await until_node(client, parent_id, "call", "child_execution_id"))["nodes"][
            "call"
        ]["child_execution_id"]
        await until_node(client, child_id, "wait", "started_at")

    async with open_loom() as client:  # a new server on the same store
        response = await client.post(
            f"/api/v1/executions/{child_id}/signals/go", json={"data": {"ok": 1}}, headers=ALICE
        )
        assert response.status_code == 202, response.text

        parent = await until_status(client, parent_id, "completed", "failed")

    assert parent["status"] == "completed", parent
    assert parent["nodes"]["call"]["output"]["done"]["data"] == {"ok": 1}


async def test_the_child_is_not_the_other_tenants(client: Client) -> None:
    child_process = await create(client, scorer())
    parent_id = await start(client, await create(client, calling(child_process)), {"amount": 1})
    child_id = (await until_status(client, parent_id, "completed"))["nodes"]["call"][
        "child_execution_id"
    ]

    response = await client.get(f"/api/v1/executions/{child_id}/status", headers=GLOBEX)

    assert response.status_code == 404


# --- saving -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("child", "version", "named"),
    [("unknown", None, "does not exist"), ("own", 7, "has no version 7")],
)
async def test_a_process_calling_what_does_not_exist_is_not_saved(
    client: Client, child: str, version: int | None, named: str
) -> None:
    own = await create(client, scorer())
    target = own if child == "own" else "6f9b3c1e-2d4a-4b8e-9c7f-1a2b3c4d5e6f"
    params = {} if version is None else {"version": version}

    response = await client.post("/api/v1/processes", json=calling(target, **params), headers=ALICE)

    assert response.status_code == 422, response.text
    assert named in response.text and "call" in response.text
    listed = (await client.get("/api/v1/processes", headers=ALICE)).json()
    assert [p["process_id"] for p in _items(listed)] == [own]


async def test_another_tenants_process_cannot_be_called(client: Client) -> None:
    theirs = await create(client, scorer())

    response = await client.post("/api/v1/processes", json=calling(theirs), headers=GLOBEX)

    assert response.status_code == 422, response.text
    assert "does not exist" in response.text


def _items(listed: Any) -> list[dict[str, Any]]:
    return list(listed["items"] if isinstance(listed, dict) else listed)


# --- foreach ------------------------------------------------------------------------------


async def test_a_foreach_runs_a_child_per_item_and_keeps_item_order(client: Client) -> None:
    child_process = await create(client, scorer())
    parent_id = await start(
        client, await create(client, each(child_process, concurrency=2)), {"items": [5, 1, 4, 2, 3]}
    )

    parent = await until_status(client, parent_id, "completed", "failed")

    assert parent["status"] == "completed", parent
    node = parent["nodes"]["each"]
    assert node["output"] == {
        "results": [
            {"done": {"score": item * 10, "at": i}} for i, item in enumerate([5, 1, 4, 2, 3])
        ]
    }
    ids = node["child_execution_ids"]
    assert len(set(ids)) == 5 and node["items"] == 5
    children = [await status(client, child_id) for child_id in ids]
    assert [c["input"] for c in children] == [
        {"item": item, "index": i} for i, item in enumerate([5, 1, 4, 2, 3])
    ]
    assert all(c["parent"] == {"execution_id": parent_id, "element": "each"} for c in children)


async def test_a_foreach_fails_on_the_first_failed_item_and_names_it(client: Client) -> None:
    child_process = await create(client, failing())
    parent_id = await start(
        client, await create(client, each(child_process, concurrency=1)), {"items": [2, 4, 5, 6]}
    )

    parent = await until_status(client, parent_id, "completed", "failed")

    node = parent["nodes"]["each"]
    assert node["state"] == "failed"
    assert "item 2" in node["error"] and "item 5 is odd" in node["error"], node["error"]
    assert parent["nodes"]["oops"]["state"] == "completed"
    # One at a time: the item after the failed one never started.
    assert len(node["child_execution_ids"]) == 3


async def test_a_foreach_of_nothing_completes_at_once(client: Client) -> None:
    parent_id = await start(
        client, await create(client, each(await create(client, scorer()))), {"items": []}
    )

    parent = await until_status(client, parent_id, "completed", "failed")

    assert parent["nodes"]["each"]["output"] == {"results": []}
    assert parent["nodes"]["each"]["child_execution_ids"] == []


# --- the tools: replay --tree and audit ------------------------------------------------


def nested(child: str) -> dict[str, Any]:
    """A middle process: start → each (foreach input.items of `child`) → done."""
    body = each(child, concurrency=1)
    body["name"] = "Middle"
    return body


async def test_replay_tree_replays_a_parent_and_every_descendant_and_audit_shows_the_links(
    client: Client,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    leaf = await create(client, failing())
    middle = await create(client, nested(leaf))
    root_id = await start(client, await create(client, calling(middle)), {"items": [2, 4, 5, 6]})
    root = await until_status(client, root_id, "completed", "failed")
    middle_id = root["nodes"]["call"]["child_execution_id"]
    leaves = (await status(client, middle_id))["nodes"]["each"]["child_execution_ids"]
    monkeypatch.setenv("LOOM_DATABASE_URL", database_url)
    capsys.readouterr()

    code = main(["replay", "--tenant", "acme", "--tree", root_id])

    out = capsys.readouterr().out.splitlines()
    # One at a time, the odd item fails: items 0, 1, 2 launched (2 and 4 ended well, 5
    # failed, 6 never started), so the tree holds exactly the executions that ran.
    assert code == 0, out
    assert len(leaves) == 3
    assert out[0].startswith(f"{root_id}: deterministic")
    assert out[1].startswith(f"  {middle_id}: deterministic")
    assert sorted(line.strip().split(":")[0] for line in out[2:5]) == sorted(leaves)
    assert all(line.startswith("    ") and "deterministic" in line for line in out[2:5])
    assert out[5] == "replayed 5 executions: 5 deterministic, 0 not"

    assert main(["audit", "--tenant", "acme", "--json", middle_id]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["type"] == "ExecutionStarted"
    assert rows[0]["data"]["parent"]["execution_id"] == root_id, rows[0]
    ended = [r for r in rows if r["type"] == "ChildEnded"]
    assert [r["data"]["execution_id"] for r in ended] == leaves
    assert main(["audit", "--tenant", "acme", middle_id]) == 0
    text = capsys.readouterr().out
    assert f"child of {root_id} (call)" in text
    assert f"child {leaves[2]} (item 2) failed: item 5 is odd" in text

    assert main(["replay", "--tenant", "acme", "--tree", "no-such-execution"]) != 0


async def test_a_rerun_from_after_a_foreach_reuses_its_results_and_starts_no_child(
    client: Client,
) -> None:
    child_process = await create(client, scorer())
    parent_id = await start(
        client, await create(client, each(child_process, concurrency=2)), {"items": [3, 1, 2]}
    )
    first = await until_status(client, parent_id, "completed", "failed")

    response = await client.post(
        f"/api/v1/executions/{parent_id}/rerun", json={"from": "done"}, headers=ALICE
    )
    assert response.status_code == 202, response.text
    rerun_id = response.json()["execution_id"]
    again = await until_status(client, rerun_id, "completed", "failed")

    assert again["status"] == "completed", again
    assert again["output"] == first["output"]
    assert again["nodes"]["each"]["output"] == first["nodes"]["each"]["output"]
    assert again["rerun_of"] == parent_id
    # The children a re-run would have started have ids derived from it: none exists.
    for index in range(3):
        response = await client.get(
            f"/api/v1/executions/{child_id(rerun_id, 'each', 1, index)}/status", headers=ALICE
        )
        assert response.status_code == 404, response.text
