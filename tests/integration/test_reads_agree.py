"""Reads that agree: once the status of an execution says where it stands, the list of
executions (read from the stored read model) never shows that tenant an older state.

The story of the issue, as a new user tried it: one execution after the other, each
waited on until its status says `completed`, and the list asked at once.
"""

from __future__ import annotations

from tests.harness.api import create, finished, listed, start
from tests.harness.looms import Client
from tests.harness.processes import one_thread

CHAIN = one_thread(
    [
        {"key": "double", "type": "transform", "params": {"expression": "input.n * 2"}},
        {"key": "done", "type": "end"},
    ],
    [("start", "double"), ("double", "done")],
)


async def test_once_the_status_says_completed_the_list_of_completed_lists_it(
    client: Client,
) -> None:
    process_id = await create(client, CHAIN)
    seen: list[str] = []
    for n in range(40):
        execution_id = await start(client, process_id, {"n": n})
        assert (await finished(client, execution_id))["status"] == "completed"
        seen.append(execution_id)
        # Asked at once, not polled: the list must already agree with the status.
        completed = {i["execution_id"] for i in await listed(client, status="completed", limit=500)}
        missing = [i for i in seen if i not in completed]
        assert not missing, f"after {n + 1} executions, {len(missing)} completed ones unlisted"
    running = await listed(client, status="running", limit=500)
    assert not {i["execution_id"] for i in running} & set(seen)
