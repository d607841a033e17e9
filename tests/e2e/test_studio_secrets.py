"""The Studio's Secrets page and "Insert secret" menus, in a real browser against a running Loom.

A person signs in with the link `make run` prints, then only clicks and types:
the header's "Secrets" button opens the page, where they add, replace and delete
secrets; the inspector of an http or agent element offers the names where a
template goes. A value is typed once and is never in the page afterwards.

The browser, the server and the helpers are test_studio.py's (Playwright
driving /usr/bin/chromium; the module is skipped the same way without them).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.e2e import test_studio as studio
from tests.e2e.test_studio import Loom, create_process, drop_element, open_studio, select, shot

# test_studio.py's fixtures (one browser for the module, a page, the server, a fresh tenant).
browser = studio.browser
page = studio.page
loom = studio.loom
tenant = studio.tenant

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


# ----------------------------------------------------------------------------- helpers


def api_secret(loom: Loom, token: str, name: str) -> httpx.Response:
    with loom.client(token) as client:
        return client.get(f"/api/v1/secrets/{name}")


def add_secret_by_api(loom: Loom, token: str, name: str, value: str) -> None:
    with loom.client(token) as client:
        response = client.post("/api/v1/secrets", json={"name": name, "value": value})
    assert response.status_code == 201, response.text


async def open_secrets_page(page: Page) -> None:
    await page.get_by_role("button", name="Secrets").click()
    await expect(page.locator("#secrets-page")).to_be_visible()
    await expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_visible()


def add_form(page: Page):
    return page.locator("#secret-add")


def secret_row(page: Page, name: str):
    return page.locator(f'#secrets-table tr[data-secret="{name}"]')


async def assert_not_in_page(page: Page, *values: str) -> None:
    """Neither the markup nor any field's current value holds one of `values`."""
    html = await page.content()
    fields: list[str] = await page.evaluate(
        "() => [...document.querySelectorAll('input, textarea, select')].map(e => e.value)"
    )
    for value in values:
        assert value not in html
        assert all(value not in field for field in fields)


def http_process(name: str) -> dict[str, Any]:
    return {
        "project": "Studio e2e",
        "app": "Secrets",
        "name": name,
        "threads": [
            {
                "key": "main",
                "name": "Main",
                "elements": [
                    {"key": "start", "type": "trigger"},
                    {
                        "key": "call",
                        "type": "http",
                        "params": {"url": "https://api.example.test/items?key="},
                    },
                    {"key": "done", "type": "end"},
                ],
                "connections": [
                    {"source": "start", "target": "call"},
                    {"source": "call", "target": "done"},
                ],
            }
        ],
    }


# ----------------------------------------------------------------------------- tests


async def test_secrets_page_adds_replaces_and_deletes_without_keeping_a_value(
    page: Page, loom: Loom, tenant: str
) -> None:
    ada = loom.token(tenant, sub="ada")
    grace = loom.token(tenant, sub="grace")
    add_secret_by_api(loom, grace, "DB_PASSWORD", f"db-{uuid.uuid4().hex}")
    first_value = f"sk-live-{uuid.uuid4().hex}"
    new_value = f"sk-rotated-{uuid.uuid4().hex}"
    refused_value = f"refused-{uuid.uuid4().hex}"
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.post_data or "") if "/api/v1/secrets" in r.url else None,
    )

    await open_studio(page, loom, ada)
    await open_secrets_page(page)
    await expect(page).to_have_url(re.compile(r"view=secrets"))
    await expect(page.locator("main.center")).to_have_attribute("inert", "")
    # The secret grace made is listed with its author; no value anywhere.
    row = secret_row(page, "DB_PASSWORD")
    await expect(row.locator(".secret-created")).to_contain_text("grace")

    # A bad name: the server refuses, the page says what it said, the value is gone.
    with loom.client(ada) as client:
        refusal = client.post("/api/v1/secrets", json={"name": "bad-name", "value": "x"})
    assert refusal.status_code == 422
    detail = refusal.json()["detail"]
    await add_form(page).get_by_label("Name", exact=True).fill("bad-name")
    await add_form(page).get_by_label("Value", exact=True).fill(refused_value)
    await add_form(page).get_by_role("button", name="Add secret").click()
    await expect(page.locator("#secret-add .form-error")).to_contain_text(detail)
    await expect(add_form(page).get_by_label("Value", exact=True)).to_have_value("")
    assert api_secret(loom, ada, "bad-name").status_code in (404, 422)

    # Add: listed with its author, the field emptied, the value nowhere in the page.
    await add_form(page).get_by_label("Name", exact=True).fill("API_KEY")
    await add_form(page).get_by_label("Value", exact=True).fill(first_value)
    await add_form(page).get_by_role("button", name="Add secret").click()
    row = secret_row(page, "API_KEY")
    await expect(row.locator(".secret-created")).to_contain_text("ada")
    await expect(row.locator(".secret-modified")).to_contain_text("ada")
    await expect(add_form(page).get_by_label("Value", exact=True)).to_have_value("")
    assert any(first_value in body for body in sent), "the value went to the server"
    saved = api_secret(loom, ada, "API_KEY")
    assert saved.status_code == 200 and saved.json()["created_by"] == "ada"
    await assert_not_in_page(page, first_value, refused_value)
    await shot(page, "secrets-01-listed")

    # Adding the same name again: the server's 409 is shown.
    await add_form(page).get_by_label("Name", exact=True).fill("API_KEY")
    await add_form(page).get_by_label("Value", exact=True).fill(refused_value)
    await add_form(page).get_by_role("button", name="Add secret").click()
    await expect(page.locator("#secret-add .form-error")).to_contain_text("exists already")

    # Replace grace's secret: created stays hers, the change is ada's.
    row = secret_row(page, "DB_PASSWORD")
    await row.get_by_role("button", name="Replace the value of DB_PASSWORD").click()
    await row.get_by_label("New value of DB_PASSWORD").fill(new_value)
    await row.get_by_role("button", name="Save").click()
    await expect(row.locator(".secret-modified")).to_contain_text("ada")
    await expect(row.locator(".secret-created")).to_contain_text("grace")
    replaced = api_secret(loom, ada, "DB_PASSWORD").json()
    assert (replaced["created_by"], replaced["modified_by"]) == ("grace", "ada")
    assert any(new_value in body for body in sent)
    await assert_not_in_page(page, first_value, new_value, refused_value)

    # Delete, after a confirm.
    await secret_row(page, "API_KEY").get_by_role("button", name="Delete API_KEY").click()
    dialog = page.locator('[data-modal="delete-secret"]')
    await expect(dialog).to_contain_text("Delete secret API_KEY?")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(secret_row(page, "API_KEY")).to_have_count(0)
    await expect(secret_row(page, "DB_PASSWORD")).to_have_count(1)
    assert api_secret(loom, ada, "API_KEY").status_code == 404
    await assert_not_in_page(page, first_value, new_value, refused_value)

    # Back to the designer with a click.
    await page.get_by_role("button", name="Back to the designer").click()
    await expect(page.locator("#secrets-page")).to_be_hidden()
    await expect(page.locator("#canvas-wrap")).to_be_visible()
    await expect(page.locator("main.center")).not_to_have_attribute("inert", "")


async def test_inspector_offers_the_tenants_secret_names(
    page: Page, loom: Loom, tenant: str
) -> None:
    token = loom.token(tenant, sub="ada")
    add_secret_by_api(loom, token, "API_KEY", f"sk-{uuid.uuid4().hex}")
    process_id = create_process(loom, token, http_process("Call with a key"))

    await open_studio(page, loom, token, process_id)
    await select(page, "call")
    url = page.locator('input[data-param="url"]')
    url_menu = page.get_by_label("Insert a secret into url")
    await expect(url_menu.locator("option", has_text="API_KEY")).to_have_count(1)
    await url.click()
    await url.press("End")
    await url_menu.select_option("API_KEY")
    await expect(url).to_have_value("https://api.example.test/items?key={{ secrets.API_KEY }}")

    # A header's value, at the cursor.
    headers = page.locator('.map-editor[data-param="headers"]')
    await headers.locator(".add-row").click()
    header = headers.locator(".map-row").last
    await header.locator(".map-key").fill("Authorization")
    await header.locator(".map-value").fill("Bearer ")
    await page.get_by_label("Insert a secret into headers").select_option("API_KEY")
    await expect(header.locator(".map-value")).to_have_value("Bearer {{ secrets.API_KEY }}")
    await shot(page, "secrets-02-inspector")

    await page.locator("#btn-save").click()
    await expect(page.locator("#dirty")).to_have_count(0)
    with loom.client(token) as client:
        saved = client.get(f"/api/v1/processes/{process_id}").json()
    elements = {e["key"]: e for e in saved["threads"][0]["elements"]}
    assert elements["call"]["params"]["url"] == (
        "https://api.example.test/items?key={{ secrets.API_KEY }}"
    )
    assert elements["call"]["params"]["headers"] == {
        "Authorization": "Bearer {{ secrets.API_KEY }}"
    }

    # A secret added on the Secrets page is offered without reloading.
    await open_secrets_page(page)
    await add_form(page).get_by_label("Name", exact=True).fill("OTHER_KEY")
    await add_form(page).get_by_label("Value", exact=True).fill("other")
    await add_form(page).get_by_role("button", name="Add secret").click()
    await expect(secret_row(page, "OTHER_KEY")).to_have_count(1)
    await page.get_by_role("button", name="Back to the designer").click()
    await select(page, "done")
    await select(page, "call")
    # An empty JSON body gets the template as a JSON string.
    await page.get_by_label("Insert a secret into body").select_option("OTHER_KEY")
    await expect(page.locator('textarea[data-param="body"]')).to_have_value(
        '"{{ secrets.OTHER_KEY }}"'
    )

    # An agent's prompt offers them too.
    await drop_element(page, "agent", 0.5, 0.8, "ask")
    await expect(
        page.get_by_label("Insert a secret into prompt").locator("option", has_text="OTHER_KEY")
    ).to_have_count(1)
