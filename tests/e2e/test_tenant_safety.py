"""One tenant's dear work, as a real `loom serve all` process, does not stall the others.

Before expressions were priced, a loop inside a loop over 4,500 numbers held the
server's event loop for 4.7 s (`/health` took 4.65 s), and a restart re-ran it before
the port opened, so not even a cancel could get in.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LoomServer, start_loom, stop_loom
from tests.support import definition, edge, el

pytestmark = pytest.mark.e2e

NESTED = "input.l.all(a, input.l.all(b, true)) ? input : input"


def _chain(length: int, expression: str, *, delay_s: float | None = None) -> dict[str, Any]:
    elements = [el("start", "trigger")]
    if delay_s is not None:
        elements.append(el("wait", "delay", seconds=delay_s))
    elements += [el(f"t{i}", "transform", expression=expression) for i in range(length)]
    elements.append(el("done", "end"))
    keys = [e["key"] for e in elements]
    return definition((elements, [edge(a, b) for a, b in itertools.pairwise(keys)]))


def _headers(server: LoomServer, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(tenant)}"}


def _save(server: LoomServer, tenant: str, body: dict[str, Any]) -> str:
    answer = httpx.post(
        f"{server.base_url}/api/v1/processes", json=body, headers=_headers(server, tenant)
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["process_id"])


def _start(server: LoomServer, tenant: str, process_id: str, input: Any) -> str:
    answer = httpx.post(
        f"{server.base_url}/api/v1/executions",
        json={"process_id": process_id, "input": input},
        headers=_headers(server, tenant),
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["execution_id"])


def _finished(server: LoomServer, tenant: str, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = httpx.get(
            f"{server.base_url}/api/v1/executions/{execution_id}/status",
            headers=_headers(server, tenant),
            timeout=30,
        ).json()
        if status["status"] in ("completed", "failed", "cancelled"):
            return dict(status)
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LoomServer]:
    served = start_loom(tmp_path)
    yield served
    stop_loom(served)


def test_the_dearest_expressions_a_tenant_can_run_leave_health_and_other_tenants_answering(
    server: LoomServer,
) -> None:
    # The worst case of the finding fails on its price; the dearest within budget
    # (a nested loop over 250 numbers, ~25 ms each) runs in a chain of 40.
    over = _save(server, "hostile", _chain(1, NESTED))
    refused = _finished(
        server, "hostile", _start(server, "hostile", over, {"l": list(range(4500))})
    )
    assert refused["status"] == "failed"
    assert "expression exceeded its budget" in refused["error"]

    dear = _save(server, "hostile", _chain(40, NESTED))
    _save(server, "bystander", _chain(1, "input"))
    latencies: list[float] = []
    bystander: list[float] = []
    busy = threading.Event()

    def load() -> None:
        ids = [_start(server, "hostile", dear, {"l": list(range(250))}) for _ in range(6)]
        busy.set()
        for execution_id in ids:
            assert _finished(server, "hostile", execution_id)["status"] == "completed"

    loader = threading.Thread(target=load)
    loader.start()
    assert busy.wait(60)
    with httpx.Client(base_url=server.base_url, timeout=30) as probe:
        while loader.is_alive():
            began = time.perf_counter()
            assert probe.get("/health").status_code == 200
            latencies.append(time.perf_counter() - began)
            began = time.perf_counter()
            listed = probe.get("/api/v1/processes", headers=_headers(server, "bystander"))
            assert listed.status_code == 200
            bystander.append(time.perf_counter() - began)
    loader.join()
    assert len(latencies) >= 20
    # Before: 4.65 s for /health, 3.5 s for another tenant's list. A slice of pure
    # elements is bounded at ~50 ms of priced work; 1 s leaves room for a loaded CI.
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    assert max(bystander) < 1.0, sorted(bystander)[-5:]


def test_a_restart_listens_and_takes_a_cancel_before_the_work_it_resumes_is_done(
    server: LoomServer, tmp_path: Path
) -> None:
    # 120 dear elements (~3 s of work) after a delay; killed during the delay.
    process_id = _save(server, "acme", _chain(120, NESTED, delay_s=0.5))
    execution_id = _start(server, "acme", process_id, {"l": list(range(250))})
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    time.sleep(0.6)  # the delay is due when the next process starts: it resumes at once

    revived = start_loom(tmp_path, LOOM_JWT_SECRET=server.secret)
    server.process = revived.process  # so the fixture stops this one
    server.base_url = revived.base_url
    answer = httpx.post(
        f"{server.base_url}/api/v1/executions/{execution_id}/cancel",
        headers=_headers(server, "acme"),
        timeout=30,
    )
    assert answer.status_code in (200, 202), answer.text
    status = _finished(server, "acme", execution_id)
    assert status["status"] == "cancelled"
    ran = [key for key, node in status["nodes"].items() if node["state"] == "completed"]
    assert len(ran) < 120


def test_an_oversized_string_result_is_refused_before_it_reaches_the_store(
    server: LoomServer, tmp_path: Path
) -> None:
    # 30 copies of 100 KB: it completed, and status and events answered 88 MB each.
    process_id = _save(server, "acme", _chain(1, " + ".join(["input.s"] * 30)))
    files = [tmp_path / "loom.db", tmp_path / "loom-read.db"]
    before = sum(f.stat().st_size for f in files if f.exists())
    execution_id = _start(server, "acme", process_id, {"s": "x" * 100_000})
    status = _finished(server, "acme", execution_id)
    assert status["status"] == "failed"
    assert "over the limit of 1 MiB" in status["nodes"]["t0"]["error"]
    events = httpx.get(
        f"{server.base_url}/api/v1/executions/{execution_id}/events",
        headers=_headers(server, "acme"),
    )
    assert len(events.content) < 1 << 20
    after = sum(f.stat().st_size for f in files if f.exists())
    assert after - before < 2 << 20  # the 100 KB input, and nothing of the 3 MB result


def test_an_execution_input_over_the_result_limit_is_refused_and_starts_nothing(
    tmp_path: Path,
) -> None:
    served = start_loom(tmp_path, LOOM_MAX_RESULT_BYTES="10000")
    try:
        process_id = _save(served, "acme", _chain(1, "input"))
        answer = httpx.post(
            f"{served.base_url}/api/v1/executions",
            json={"process_id": process_id, "input": {"s": "x" * 20_000}},
            headers=_headers(served, "acme"),
        )
        assert answer.status_code == 422
        assert "the execution's input is" in answer.json()["detail"]
        listed = httpx.get(f"{served.base_url}/api/v1/executions", headers=_headers(served, "acme"))
        assert listed.status_code == 200 and listed.json()["items"] == []
    finally:
        stop_loom(served)
