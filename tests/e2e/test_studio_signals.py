"""The Studio answers a waiting `signal` element, in a real browser against a running Loom.

A person runs a process that waits for an approval, sees the element waiting
(its badge and state), selects it and sends the signal with the form built from
the element's JSON Schema; a refusal (data not fitting the schema) is shown in
the API's words and changes nothing, and the accepted signal completes the run.

The browser, the server and the helpers are test_studio.py's.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.e2e import test_studio as studio
from tests.e2e.test_studio import (
    RUN_TIMEOUT_MS,
    Loom,
    create_process,
    expect_states,
    node,
    open_studio,
    select,
    shot,
)

browser = studio.browser
page = studio.page
loom = studio.loom
tenant = studio.tenant

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SCHEMA = {
    "type": "object",
    "required": ["ok"],
    "properties": {"ok": {"type": "boolean"}, "note": {"type": "string"}},
}


def approval_process() -> dict:
    elements = [
        {"key": "start", "type": "trigger"},
        {
            "key": "approve",
            "type": "signal",
            "params": {"name": "approval", "schema": SCHEMA},
        },
        {"key": "done", "type": "end"},
    ]
    connections = [
        {"source": "start", "target": "approve"},
        {"source": "approve", "target": "done"},
    ]
    return {
        "project": "Studio e2e",
        "app": "Signals",
        "name": "Approve",
        "threads": [{"key": "main", "elements": elements, "connections": connections}],
    }


async def test_a_waiting_signal_is_answered_from_its_form_and_a_refusal_is_shown(
    page: Page, loom: Loom, tenant: str
) -> None:
    token = loom.token(tenant, sub="approver")
    process_id = create_process(loom, token, approval_process())
    await open_studio(page, loom, token, process_id)

    await page.locator("#run-input").fill("{}")
    await page.locator("#btn-run").click()
    await expect_states(page, {"start": "completed", "approve": "waiting"})
    await expect(node(page, "approve").locator(".badge-waiting")).to_have_count(1)

    await select(page, "approve")
    form = page.locator('.signal-form[data-signal-for="approve"]')
    await expect(form).to_be_visible()
    send = form.get_by_role("button", name="Send signal approval")

    await send.click()  # `ok` left out: the schema refuses it
    status = form.locator('[data-signal-status="approve"]')
    await expect(status).to_contain_text("'ok' is a required property")
    await expect(node(page, "approve")).to_have_attribute("data-state", "waiting")
    await shot(page, "signal-refused")

    await form.locator('[data-field="ok"] label.toggle').click()
    await form.locator('textarea[data-param="note"], input[data-param="note"]').fill("fine")
    await send.click()

    await expect_states(page, {"approve": "completed", "done": "completed"})
    await expect(page.locator("#run-summary .pill")).to_have_attribute(
        "data-state", "completed", timeout=RUN_TIMEOUT_MS
    )
    await shot(page, "signal-answered")
    with loom.client(token) as client:
        events = client.get(f"/api/v1/executions?process_id={process_id}").json()["items"]
        execution_id = events[0]["execution_id"]
        status_doc = client.get(f"/api/v1/executions/{execution_id}/status").json()
    assert status_doc["output"]["done"]["data"] == {"ok": True, "note": "fine"}
    assert status_doc["output"]["done"]["by"] == "approver"


async def test_the_inbox_lists_a_waiting_signal_and_opens_its_execution_to_answer_it(
    page: Page, loom: Loom, tenant: str
) -> None:
    token = loom.token(tenant, sub="approver")
    process_id = create_process(loom, token, approval_process())
    with loom.client(token) as client:
        started = client.post("/api/v1/executions", json={"process_id": process_id})
    execution_id = started.json()["execution_id"]
    await open_studio(page, loom, token)

    await page.get_by_role("button", name="Inbox").click()
    await expect(page.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()
    row = page.locator(f'#inbox-table tr[data-execution="{execution_id}"]')
    await expect(row).to_contain_text("approval")
    await expect(row).to_contain_text("Approve")  # the process's name
    await shot(page, "signal-inbox")
    await row.get_by_role("button", name="Open").click()

    await expect(page.locator("#inbox-page")).to_be_hidden()
    await expect_states(page, {"approve": "waiting"})
    await select(page, "approve")
    form = page.locator('.signal-form[data-signal-for="approve"]')
    await form.locator('[data-field="ok"] label.toggle').click()
    await form.get_by_role("button", name="Send signal approval").click()
    await expect_states(page, {"approve": "completed", "done": "completed"})

    await page.get_by_role("button", name="Inbox").click()
    await expect(page.locator("#inbox-table")).to_contain_text("Nothing waits for a signal.")
