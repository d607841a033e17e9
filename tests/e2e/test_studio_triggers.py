"""The Studio's Triggers section and how the History list names what started each execution.

A person signs in with the link `make run` prints, opens a process, selects its
start element and, in the inspector, adds a signed webhook (its URL shown and
copied once saved) and a schedule whose next five ticks come from the server as
they type. A webhook call made from outside (here: httpx) is then listed in the
History tab as started by "webhook orders".

The browser, the server and the helpers are test_studio.py's (Playwright
driving /usr/bin/chromium; the module is skipped the same way without them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.e2e import test_studio as studio
from tests.e2e.test_studio import Loom, create_process, open_studio, select, shot

# test_studio.py's fixtures (one browser for the module, a page, the server, a fresh tenant).
browser = studio.browser
page = studio.page
loom = studio.loom
tenant = studio.tenant

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


def hooked_process(name: str) -> dict[str, Any]:
    return {
        "project": "Studio e2e",
        "app": "Triggers",
        "name": name,
        "threads": [
            {
                "key": "main",
                "name": "Main",
                "elements": [
                    {"key": "start", "type": "trigger"},
                    {"key": "done", "type": "end"},
                ],
                "connections": [{"source": "start", "target": "done"}],
            }
        ],
    }


def card(page: Page, key: str):
    return page.locator(f'[data-section="triggers"] .trigger-card[data-trigger="{key}"]')


async def set_key(page: Page, old: str, new: str) -> None:
    field = card(page, old).get_by_label("Key", exact=True)
    await field.fill(new)
    await field.press("Enter")
    await expect(card(page, new)).to_have_count(1)


async def save(page: Page) -> None:
    await page.locator("#btn-save").click()
    await expect(page.locator("#dirty")).to_have_count(0)


def server_refusal(loom: Loom, token: str, **query: str) -> str:
    with loom.client(token) as client:
        response = client.get("/api/v1/schedules/next", params=query)
    assert response.status_code == 422, response.text
    return response.json()["detail"]


async def test_add_a_signed_webhook_copy_its_url_and_see_what_it_started(
    page: Page, loom: Loom, tenant: str
) -> None:
    token = loom.token(tenant, sub="ada")
    signing_key = f"whsec-{uuid.uuid4().hex}"
    with loom.client(token) as client:
        added = client.post("/api/v1/secrets", json={"name": "HOOK_KEY", "value": signing_key})
    assert added.status_code == 201, added.text
    process_id = create_process(loom, token, hooked_process("Orders in"))
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    await open_studio(page, loom, token, process_id)
    await select(page, "start")
    section = page.locator('[data-section="triggers"]')
    await expect(section).to_contain_text("No webhooks or schedules yet.")

    await section.get_by_role("button", name="Add webhook").click()
    await set_key(page, "webhook", "orders")
    hook = card(page, "orders")
    await hook.get_by_label("Respond").select_option("accepted")
    secret_menu = hook.get_by_label("Signing secret")
    await expect(secret_menu.locator("option", has_text="HOOK_KEY")).to_have_count(1)
    await secret_menu.select_option("HOOK_KEY")
    await expect(hook.locator("[data-hook-url-pending]")).to_be_visible()

    await save(page)
    hook = card(page, "orders")
    url_box = hook.locator("[data-hook-url]")
    await expect(url_box).to_have_value(studio.re.compile(rf"^{loom.base_url}/hooks/[\w-]+$"))
    url = await url_box.input_value()
    with loom.client(token) as client:
        saved = client.get(f"/api/v1/processes/{process_id}").json()
    assert saved["triggers"][0]["key"] == "orders"
    assert saved["triggers"][0]["secret"] == "HOOK_KEY"
    assert url == loom.base_url + saved["triggers"][0]["url"]

    await hook.get_by_role("button", name="Copy").click()
    await expect(hook.get_by_role("status")).to_have_text("Copied.")
    assert await page.evaluate("() => navigator.clipboard.readText()") == url
    await shot(page, "triggers-01-webhook")

    # Someone outside calls the copied URL, signing the body with the secret.
    body = json.dumps({"order": 42}).encode()
    signature = hmac.new(signing_key.encode(), body, hashlib.sha256).hexdigest()
    unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    called = httpx.post(
        url,
        content=body,
        headers={"Content-Type": "application/json", "X-Loom-Signature": f"sha256={signature}"},
    )
    assert called.status_code == 202, called.text
    execution_id = called.json()["execution_id"]

    await page.locator("#tab-history").click()
    await page.locator("#history-refresh").click()
    row = page.locator(f'.exec-row[data-execution-id="{execution_id}"]')
    await expect(row.locator(".exec-trigger")).to_have_text("webhook orders")
    await expect(row.locator(".exec-trigger")).to_have_attribute("data-trigger-type", "webhook")
    await expect(page.locator(".exec-row")).to_have_count(1)
    await shot(page, "triggers-02-history")


async def test_add_a_schedule_see_its_next_ticks_and_the_servers_refusal(
    page: Page, loom: Loom, tenant: str
) -> None:
    token = loom.token(tenant, sub="ada")
    process_id = create_process(loom, token, hooked_process("Nightly"))
    with loom.client(token) as client:
        started = client.post("/api/v1/executions", json={"process_id": process_id})
    assert started.status_code == 202, started.text

    await open_studio(page, loom, token, process_id)
    await select(page, "start")
    section = page.locator('[data-section="triggers"]')
    await section.get_by_role("button", name="Add schedule").click()
    await set_key(page, "schedule", "nightly")
    schedule = card(page, "nightly")
    await schedule.get_by_label("Cron expression").fill("0 2 * * *")
    await schedule.get_by_label("Time zone").fill("Europe/Paris")
    ticks = schedule.locator("[data-ticks] li[data-tick]")
    await expect(ticks).to_have_count(5)
    with loom.client(token) as client:
        expected = client.get(
            "/api/v1/schedules/next", params={"cron": "0 2 * * *", "timezone": "Europe/Paris"}
        ).json()["next"]
    assert [await t.get_attribute("data-tick") for t in await ticks.all()] == expected
    await expect(section).not_to_contain_text("null")
    await shot(page, "triggers-03-schedule")

    # A cron the server refuses: its own words, and no ticks.
    detail = server_refusal(loom, token, cron="61 * * * *", timezone="Europe/Paris")
    await schedule.get_by_label("Cron expression").fill("61 * * * *")
    await expect(schedule.locator("[data-ticks-error]")).to_have_text(detail)
    await expect(ticks).to_have_count(0)
    # Saving it is refused too, shown on the trigger.
    await page.locator("#btn-save").click()
    await expect(schedule.locator(".insp-error")).to_be_visible()
    await expect(page.locator("#dirty")).to_have_count(1)

    # An interval instead; then saved with the process.
    await schedule.get_by_role("radio", name="Interval").check()
    await expect(schedule.locator(".insp-error")).to_have_count(0)
    await schedule.get_by_label("Every (s)").fill("3600")
    await expect(ticks).to_have_count(5)
    await expect(schedule.locator("[data-ticks-error]")).to_have_text("")
    await save(page)
    with loom.client(token) as client:
        saved = client.get(f"/api/v1/processes/{process_id}").json()
    (trigger,) = saved["triggers"]
    assert trigger["key"] == "nightly" and trigger["every_s"] == 3600
    assert "cron" not in trigger and trigger["next_at"]

    # The execution started with a token is listed as started by the API.
    await page.locator("#tab-history").click()
    await expect(page.locator(".exec-row .exec-trigger")).to_have_text("API")

    # Removing the schedule and saving drops it.
    await select(page, "start")
    await card(page, "nightly").get_by_role("button", name="Remove trigger nightly").click()
    await expect(card(page, "nightly")).to_have_count(0)
    await save(page)
    with loom.client(token) as client:
        assert client.get(f"/api/v1/processes/{process_id}").json()["triggers"] == []
