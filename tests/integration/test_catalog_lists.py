"""The process and project lists as read models: current after a save, an import, a rebuild.

Each test runs on SQLite and on PostgreSQL (the `database_url` fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from infra.auth import mint_token
from infra.settings import Settings
from services.bootstrap import Loom, open_catalog_store, open_store, web_app
from services.cli import main
from tests.support import SECRET, definition, edge, el


def auth(tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, tenant, 'alice')}"}


def process(name: str, project: str = "Sales", app: str = "CRM") -> dict[str, Any]:
    thread = ([el("start", "trigger"), el("end", "end")], [edge("start", "end")])
    return definition(thread, project=project, app=app, name=name)


def settings_for(url: str) -> Settings:
    return Settings.from_env({"LOOM_DATABASE_URL": url, "LOOM_JWT_SECRET": SECRET})


@asynccontextmanager
async def serving(url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    app = web_app(Loom(settings_for(url)))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


async def names(client: AsyncTestClient[Any], tenant: str = "acme") -> list[str]:
    response = await client.get("/api/v1/processes", headers=auth(tenant))
    assert response.status_code == 200, response.text
    return [p["name"] for p in response.json()]


async def tree(client: AsyncTestClient[Any], tenant: str = "acme") -> dict[str, Any]:
    """{project: {app: [process names]}} as GET /projects answers."""
    response = await client.get("/api/v1/projects", headers=auth(tenant))
    assert response.status_code == 200, response.text
    return {
        project["name"]: {
            app["name"]: [p["name"] for p in app["processes"]] for app in project["apps"]
        }
        for project in response.json()
    }


async def test_a_save_is_listed_at_once_and_a_move_shows_the_process_only_where_it_lives(
    database_url: str,
) -> None:
    async with serving(database_url) as client:
        saved = await client.post("/api/v1/processes", json=process("Onboard"), headers=auth())
        assert saved.status_code == 201, saved.text
        assert await names(client) == ["Onboard"]

        pid = saved.json()["process_id"]
        moved = await client.put(
            f"/api/v1/processes/{pid}",
            json=process("Onboard v2", project="Ops", app="Desk") | {"expected_version": 1},
            headers=auth(),
        )
        assert moved.status_code == 200, moved.text
        listed = (await client.get("/api/v1/processes", headers=auth())).json()
        assert [(p["name"], p["version"], p["project"]) for p in listed] == [
            ("Onboard v2", 2, "Ops")
        ]
        assert await tree(client) == {"Sales": {"CRM": []}, "Ops": {"Desk": ["Onboard v2"]}}
        assert await names(client, "globex") == []  # another tenant's list is its own


async def test_an_import_into_a_running_server_is_listed(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    async with serving(source) as client:
        for name, project in (("Invoice", "Billing"), ("Refund", "Billing"), ("Greet", "Web")):
            saved = await client.post(
                "/api/v1/processes", json=process(name, project=project), headers=auth()
            )
            assert saved.status_code == 201, saved.text
    archive = tmp_path / "acme.jsonl"
    monkeypatch.setenv("LOOM_DATABASE_URL", source)
    assert main(["export", "--tenant", "acme", "--output", str(archive)]) == 0

    async with serving(database_url) as client:
        assert await names(client) == []
        monkeypatch.setenv("LOOM_DATABASE_URL", database_url)
        assert main(["import", str(archive)]) == 0
        assert await names(client) == ["Invoice", "Refund", "Greet"]
        assert await tree(client) == {
            "Billing": {"CRM": ["Invoice", "Refund"]},
            "Web": {"CRM": ["Greet"]},
        }


async def test_rebuild_brings_lost_lists_back(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(database_url) as client:
        for name in ("One", "Two"):
            saved = await client.post("/api/v1/processes", json=process(name), headers=auth())
            assert saved.status_code == 201, saved.text

    settings = settings_for(database_url)
    store = open_store(settings)
    lists = open_catalog_store(settings, store)
    try:
        # The rows lost but the position kept (an old backup of the read model, a
        # dropped table): a start catches up from the position and cannot tell.
        lists.reset("acme")
        lists.save("acme", [], [], store.max_position("acme"))
    finally:
        lists.close()
        store.close()
    async with serving(database_url) as client:
        assert await names(client) == []

    monkeypatch.setenv("LOOM_DATABASE_URL", database_url)
    monkeypatch.setenv("LOOM_JWT_SECRET", SECRET)
    assert main(["projections", "rebuild", "--tenant", "acme"]) == 0
    async with serving(database_url) as client:
        assert await names(client) == ["One", "Two"]
        assert await tree(client) == {"Sales": {"CRM": ["One", "Two"]}}


async def test_a_lost_read_model_is_rebuilt_at_start(database_url: str) -> None:
    async with serving(database_url) as client:
        saved = await client.post("/api/v1/processes", json=process("Kept"), headers=auth())
        assert saved.status_code == 201, saved.text
    settings = settings_for(database_url)
    store = open_store(settings)
    lists = open_catalog_store(settings, store)
    try:
        lists.reset("acme")  # rows and position gone: the next start folds from the first event
    finally:
        lists.close()
        store.close()
    async with serving(database_url) as client:
        assert await names(client) == ["Kept"]
