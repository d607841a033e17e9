"""Schemathesis against the app's own OpenAPI document, over real HTTP, on both stores.

Every operation gets schema-valid and schema-invalid requests with a valid
token, half of them aimed at ids that exist; no answer may be a 5xx, and every
answer must fit the document. Bounded to run in about a minute.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from infra.auth import mint_token
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from tests.support import SECRET

AUTH = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}
EXAMPLES_PER_MODE = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Litestar drops an empty `security: []` from the document, so /health looks as if it needed
# the token; negative mode would then expect a 401 for a request without one.
OPEN_OPERATIONS = {"GET /health"}

PROCESS: dict[str, Any] = {
    "project": "Fuzz",
    "app": "Fuzz",
    "name": "Double",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "start", "type": "trigger"},
                {"key": "twice", "type": "transform", "params": {"expression": "input"}},
                {"key": "nap", "type": "delay", "params": {"seconds": 600}},
                {"key": "done", "type": "end"},
            ],
            "connections": [
                {"source": "start", "target": "twice"},
                {"source": "twice", "target": "nap"},
                {"source": "nap", "target": "done"},
            ],
        }
    ],
}


class Server:
    """A Loom served by uvicorn on a free loopback port, with a few real ids to aim at."""

    def __init__(self, database_url: str) -> None:
        settings = Settings.from_env({"LOOM_DATABASE_URL": database_url, "LOOM_JWT_SECRET": SECRET})
        config = uvicorn.Config(
            web_app(Loom(settings)), host="127.0.0.1", port=0, log_config=None, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""
        self.ids: dict[str, str] = {}

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert self._thread.is_alive(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._seed()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def _seed(self) -> None:
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=10) as client:
            process = client.post("/api/v1/processes", json=PROCESS).json()["process_id"]
            execution = client.post(
                "/api/v1/executions", json={"process_id": process, "input": {"v": 1}}
            ).json()["execution_id"]
            agent = client.post("/api/v1/agents", json={"name": "A", "model": "m"}).json()
            # Archiving the process every other operation starts would refuse every start.
            archivable = client.post("/api/v1/processes", json=PROCESS).json()["process_id"]
        self.ids = {"process_id": process, "execution_id": execution, "agent_id": agent["agent_id"]}
        self.archivable = archivable


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    if request.param == "sqlite":
        with Server(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/loom.db") as running:
            yield running
        return
    url = request.getfixturevalue("postgres_url")
    connect: Callable[[], Any] = request.getfixturevalue("postgres_connect")
    schema = f"loomtest_fuzz_{secrets.token_hex(6)}"
    try:
        with Server(f"{url}{'&' if '?' in url else '?'}schema={schema}") as running:
            yield running
    finally:
        with connect() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _strategy(operation: Any, mode: GenerationMode, ids: dict[str, str]) -> Any:
    """Generated ids almost never name something that exists: aim half of the cases at real ids."""
    generated = operation.as_strategy(generation_mode=mode)
    names = {p.name for p in operation.path_parameters}
    real = {name: ids[name] for name in names if name in ids}
    if operation.label == "DELETE /api/v1/processes/{process_id}":
        real["process_id"] = ids["archivable"]
    if real:
        aimed = operation.as_strategy(generation_mode=mode, path_parameters=real)
    else:
        aimed = generated.map(lambda case: _aim_body(case, ids))
    return st.one_of(generated, aimed)


def _aim_body(case: schemathesis.Case, ids: dict[str, str]) -> schemathesis.Case:
    if isinstance(case.body, dict) and isinstance(case.body.get("process_id"), str):
        case.body = {**case.body, "process_id": ids["process_id"]}
    return case


def _fuzz(server: Server, operation: Any, mode: GenerationMode, seen: Counter[int]) -> None:
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @given(case=_strategy(operation, mode, {**server.ids, "archivable": server.archivable}))
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        # A negative case may drop the token on purpose (the scheme makes it a required
        # header); adding ours back would turn it into a valid request.
        dropped_token = mode is GenerationMode.NEGATIVE and "Authorization" not in (
            case.headers or {}
        )
        headers = {} if dropped_token else AUTH
        response = case.call(base_url=server.url, headers=headers, timeout=15)
        seen[response.status_code] += 1
        # Schemathesis 4.32 sometimes sends its mutated query parameter under an empty
        # name, so the server never sees the bad value (the false positive of its issue
        # #4600): such a case is held to the positive checks only.
        lost_mutation = isinstance(case.query, dict) and "" in case.query
        case.validate_response(response, checks=CHECKS if lost_mutation else checks)

    run()


def test_no_generated_request_gets_a_5xx_or_an_answer_off_the_schema(
    server: Server,
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    failures: list[str] = []
    seen: Counter[int] = Counter()
    started = time.monotonic()

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if operation.label in OPEN_OPERATIONS and mode is GenerationMode.NEGATIVE:
                continue
            try:
                _fuzz(server, operation, mode, seen)
            except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure
                failures.append(f"{operation.label} [{mode.value}]: {exc}")

    assert not failures, "\n\n".join(failures)
    # It reached past the token and the decoding into the services, and found real ids.
    assert sum(seen.values()) >= len(operations) * EXAMPLES_PER_MODE
    assert {200, 202, 400, 404, 422} <= set(seen), seen
    assert time.monotonic() - started < 240


def test_the_document_is_a_valid_openapi_3_document(server: Server) -> None:
    document = httpx.get(f"{server.url}/schema/openapi.json").json()

    schema = schemathesis.openapi.from_dict(document)
    schema.validate()

    assert document["openapi"].startswith("3.")
    assert {"BearerToken": []} in document["security"]
    assert all(op["operationId"] for path in document["paths"].values() for op in path.values())
