"""The Studio in a real browser: design, save, run and watch, against a running Loom.

Playwright (the PyPI package) drives Debian's Chromium at /usr/bin/chromium; no
browser is downloaded. Without either, the module is skipped with a message
saying how to enable it.

The tests need a Loom serving HTTP and the WebSocket. They take it from the
`loom_server` fixture (from conftest), which must offer:

- `loom_server.base_url`: e.g. "http://127.0.0.1:8123" (the Studio at `/studio`);
- `loom_server.token(tenant, sub="...")`: a token that server accepts.

Screenshots of the key states go to `test-artifacts/` at the repository root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

CHROMIUM = os.environ.get("LOOM_CHROMIUM", "/usr/bin/chromium")

try:
    from playwright.async_api import Page, WebSocketRoute, async_playwright, expect
except ImportError:  # pragma: no cover - depends on the machine
    pytest.skip(
        "Studio browser tests need Playwright: `.venv/bin/pip install playwright` "
        "(no browser download needed; Chromium comes from `apt-get install chromium`)",
        allow_module_level=True,
    )

if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
    pytest.skip(
        f"Studio browser tests need Chromium at {CHROMIUM}: `apt-get install -y chromium` "
        "(or point LOOM_CHROMIUM at a Chromium binary)",
        allow_module_level=True,
    )

# One browser for the module: every test and fixture here runs on the module's loop.
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORT = {"width": 1920, "height": 1080}
RUN_TIMEOUT_MS = 20_000


# ----------------------------------------------------------------------------- fixtures


class Loom:
    """The server under test, whatever shape the `loom_server` fixture gives it."""

    def __init__(self, server: Any) -> None:
        if isinstance(server, dict):
            self.base_url = server.get("base_url") or server["url"]
            self._mint = server.get("token") or server["mint_token"]
        else:
            self.base_url = getattr(server, "base_url", None) or server.url
            self._mint = getattr(server, "token", None) or server.mint_token
        self.base_url = str(self.base_url).rstrip("/")

    def token(self, tenant: str, sub: str = "studio-e2e") -> str:
        return self._mint(tenant, sub=sub)

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )


@pytest.fixture
def loom(loom_server: Any) -> Loom:
    return Loom(loom_server)


@pytest.fixture
def tenant() -> str:
    return f"studio-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser):
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda err: page_errors.append(str(err)))
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        await context.close()
    assert not page_errors, f"uncaught errors in the page: {page_errors}"


# ----------------------------------------------------------------------------- helpers


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"studio-{name}.png"))


async def open_studio(page: Page, loom: Loom, token: str, process_id: str | None = None) -> None:
    fragment = f"token={token}" + (f"&process={process_id}" if process_id else "")
    await page.goto(f"{loom.base_url}/studio#{fragment}")
    await expect(page.locator("body[data-ready=true]")).to_have_count(1)


def node(page: Page, key: str):
    return page.locator(f'svg.canvas .node[data-key="{key}"]')


async def center(locator) -> tuple[float, float]:
    box = await locator.bounding_box()
    assert box, f"{locator} is not visible"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    await page.mouse.move(*start)
    await page.mouse.down()
    await page.mouse.move(start[0] + 6, start[1] + 6, steps=2)
    await page.mouse.move(*end, steps=12)
    await page.mouse.up()


async def canvas_point(page: Page, fx: float, fy: float) -> tuple[float, float]:
    box = await page.locator("svg.canvas").bounding_box()
    assert box
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy


async def drop_element(page: Page, element_type: str, fx: float, fy: float, key: str) -> None:
    """Drag `element_type` from the palette to (fx, fy) of the canvas and give it `key`."""
    before = await page.locator("svg.canvas .node").count()
    item = page.locator(f'[data-palette-type="{element_type}"]')
    await item.scroll_into_view_if_needed()
    await drag(page, await center(item), await canvas_point(page, fx, fy))
    await expect(page.locator("svg.canvas .node")).to_have_count(before + 1)
    selected = page.locator("svg.canvas .node.selected")
    await expect(selected).to_have_attribute("data-type", element_type)
    await rename_selected(page, key)


async def rename_selected(page: Page, key: str) -> None:
    field = page.locator("#insp-key")
    await field.fill(key)
    await field.press("Enter")
    await expect(node(page, key)).to_have_count(1)


async def connect(page: Page, source: str, port: str, target: str) -> None:
    before = await page.locator("svg.canvas .edge").count()
    handle = node(page, source).locator(f'[data-port="{port}"] .port-dot')
    await drag(page, await center(handle), await center(node(page, target).locator(".node-body")))
    await expect(page.locator("svg.canvas .edge")).to_have_count(before + 1)
    edge = page.locator(f'svg.canvas .edge[data-source="{source}"][data-target="{target}"]')
    await expect(edge).to_have_attribute("data-port", port)


async def select(page: Page, key: str) -> None:
    await node(page, key).locator(".node-key").click()
    await expect(page.locator("#insp-key")).to_have_value(key)


async def set_output_map(page: Page, fields: dict[str, str]) -> None:
    editor = page.locator('.map-editor[data-param="output"]')
    for name, expression in fields.items():
        await editor.locator(".add-row").click()
        row = editor.locator(".map-row").last
        await row.locator(".map-key").fill(name)
        await row.locator(".map-value").fill(expression)


async def expect_states(page: Page, states: dict[str, str], timeout: int = RUN_TIMEOUT_MS) -> None:
    for key, state in states.items():
        await expect(node(page, key)).to_have_attribute("data-state", state, timeout=timeout)


def linear_process(name: str, *, delay_s: float | None = None) -> dict[str, Any]:
    """trigger → [delay] → transform → condition → end/end, laid out without positions."""
    elements: list[dict[str, Any]] = [{"key": "start", "type": "trigger"}]
    connections: list[dict[str, Any]] = []
    previous = "start"
    if delay_s is not None:
        elements.append({"key": "pause", "type": "delay", "params": {"seconds": delay_s}})
        connections.append({"source": "start", "target": "pause"})
        previous = "pause"
    elements += [
        {"key": "score", "type": "transform", "params": {"output": {"score": "input.amount * 2"}}},
        {"key": "big", "type": "condition", "params": {"expression": "input.score > 100"}},
        {"key": "yes", "type": "end"},
        {"key": "no", "type": "end"},
    ]
    connections += [
        {"source": previous, "target": "score"},
        {"source": "score", "target": "big"},
        {"source": "big", "source_port": "true", "target": "yes"},
        {"source": "big", "source_port": "false", "target": "no"},
    ]
    return {
        "project": "Studio e2e",
        "app": "Checks",
        "name": name,
        "threads": [
            {"key": "main", "name": "Main", "elements": elements, "connections": connections}
        ],
    }


def create_process(loom: Loom, token: str, body: dict[str, Any]) -> str:
    with loom.client(token) as client:
        response = client.post("/api/v1/processes", json=body)
    assert response.status_code == 201, response.text
    return response.json()["process_id"]


# ----------------------------------------------------------------------------- tests


async def test_build_condition_join_process_save_run_and_watch(
    page: Page, loom: Loom, tenant: str
) -> None:
    token = loom.token(tenant, sub="ada")
    http_urls: list[str] = []
    socket_urls: list[str] = []
    page.on("request", lambda request: http_urls.append(request.url))
    page.on("websocket", lambda ws: socket_urls.append(ws.url))

    await open_studio(page, loom, token)
    # The token left the address bar, and the page shows whose it is.
    assert "token=" not in page.url
    await expect(page.locator("#tenant-name")).to_have_text(tenant)

    await page.locator("#btn-new").click()
    dialog = page.locator('[data-modal="new-process"]')
    await dialog.locator('input[name="project"]').fill("Sales")
    await dialog.locator('input[name="app"]').fill("Leads")
    await dialog.locator('input[name="name"]').fill("Route by score")
    await dialog.locator('button[type="submit"]').click()
    await expect(node(page, "start")).to_have_count(1)

    # Room to lay out seven elements, then move the trigger to the left edge.
    for _ in range(2):
        await page.locator("#zoom-out").click()
    await drag(
        page,
        await center(node(page, "start").locator(".node-key")),
        await canvas_point(page, 0.08, 0.45),
    )

    await drop_element(page, "transform", 0.22, 0.45, "score")
    await set_output_map(page, {"score": "input.amount * 2"})
    await drop_element(page, "condition", 0.36, 0.45, "big")
    await page.locator('[data-param="expression"]').fill("input.score > 100")
    await drop_element(page, "transform", 0.51, 0.24, "high")
    await set_output_map(page, {"tier": "'high'", "score": "input.score"})
    await drop_element(page, "transform", 0.51, 0.68, "low")
    await set_output_map(page, {"tier": "'low'", "score": "input.score"})
    await drop_element(page, "join", 0.66, 0.45, "merge")
    await drop_element(page, "end", 0.80, 0.45, "done")

    await connect(page, "start", "out", "score")
    await connect(page, "score", "out", "big")
    await connect(page, "big", "true", "high")
    await connect(page, "big", "false", "low")
    await connect(page, "high", "out", "merge")
    await connect(page, "low", "out", "merge")
    await connect(page, "merge", "out", "done")
    await page.locator("#zoom-fit").click()
    await select(page, "big")
    await shot(page, "01-designed")

    await page.locator("#btn-save").click()
    await expect(page.locator("#dirty")).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"#process=[^&]+$"))
    process_id = page.url.split("#process=")[1]
    await expect(page.locator(f'.tree-row.process[data-process-id="{process_id}"]')).to_have_count(
        1
    )

    # What was saved is what was drawn: ports, params and positions.
    with loom.client(token) as client:
        saved = client.get(f"/api/v1/processes/{process_id}").json()
    definition = saved.get("definition", saved)
    thread = definition["threads"][0]
    elements = {e["key"]: e for e in thread["elements"]}
    assert set(elements) == {"start", "score", "big", "high", "low", "merge", "done"}
    assert elements["big"]["params"] == {"expression": "input.score > 100"}
    assert elements["score"]["params"] == {"output": {"score": "input.amount * 2"}}
    assert all({"x", "y"} <= set(e.get("position") or {}) for e in elements.values())
    edges = {
        (c["source"], c.get("source_port") or "out", c["target"]) for c in thread["connections"]
    }
    assert edges == {
        ("start", "out", "score"),
        ("score", "out", "big"),
        ("big", "true", "high"),
        ("big", "false", "low"),
        ("high", "out", "merge"),
        ("low", "out", "merge"),
        ("merge", "out", "done"),
    }

    await page.locator("#run-input").fill(json.dumps({"amount": 80}))
    await page.locator("#btn-run").click()
    await expect_states(
        page,
        {
            "start": "completed",
            "score": "completed",
            "big": "completed",
            "high": "completed",
            "low": "skipped",
            "merge": "completed",
            "done": "completed",
        },
    )
    await expect(page.locator("#run-summary .pill")).to_have_attribute(
        "data-state", "completed", timeout=RUN_TIMEOUT_MS
    )
    await expect(page.locator("#conn")).to_have_attribute("data-mode", "done")
    await select(page, "high")
    output = page.locator('[data-node-output="high"]')
    await expect(output).to_contain_text('"tier": "high"')
    await expect(output).to_contain_text('"score": 160')
    await shot(page, "02-run-completed")

    # History: the execution, its timeline, and the slider stepping back in time.
    await page.locator("#tab-history").click()
    row = page.locator(".exec-row").first
    await expect(row).to_have_attribute("data-status", "completed")
    await row.click()
    await expect(page.locator(".timeline .ev-row").first).to_be_visible()
    assert await page.locator(".timeline .ev-row").count() >= 8
    slider = page.locator('[data-testid="time-slider"]')
    await slider.fill("1")
    await expect(node(page, "done")).to_have_attribute("data-state", "pending")
    await shot(page, "03-history-step-1")
    maximum = await slider.get_attribute("max")
    await slider.fill(maximum or "0")
    await expect(node(page, "done")).to_have_attribute("data-state", "completed")

    # The token went in headers only; the WebSocket is the one URL that carries it.
    assert socket_urls and all("/ws/executions/" in url for url in socket_urls)
    assert not [url for url in http_urls if token in url], "the token leaked into a request URL"


async def test_refused_save_marks_the_offending_element(
    page: Page, loom: Loom, tenant: str
) -> None:
    token = loom.token(tenant)
    process_id = create_process(loom, token, linear_process("Refusal"))
    await open_studio(page, loom, token, process_id)
    await expect(node(page, "big")).to_have_count(1)

    await select(page, "big")
    await page.locator('[data-param="expression"]').fill("input.score >")
    await page.locator("#btn-save").click()

    await expect(node(page, "big")).to_have_class(re.compile(r"\bhas-error\b"))
    bubble = page.locator('svg.canvas .error-bubble[data-error-for="big"]')
    await expect(bubble).to_be_visible()
    assert (await bubble.inner_text()).strip()
    await expect(page.locator('.insp-error[data-error-for="big"]')).to_be_visible()
    for other in ("start", "score", "yes", "no"):
        await expect(node(page, other)).not_to_have_class(re.compile(r"\bhas-error\b"))
    await expect(page.locator("#dirty")).to_have_count(1)
    await shot(page, "04-refused-422")

    # Nothing was saved.
    with loom.client(token) as client:
        assert client.get(f"/api/v1/processes/{process_id}").json()["version"] == 1

    # Fixing it clears the mark, and the save goes through as v2.
    await page.locator('[data-param="expression"]').fill("input.score > 120")
    await expect(node(page, "big")).not_to_have_class(re.compile(r"\bhas-error\b"))
    await page.locator("#btn-save").click()
    await expect(page.locator("#version-select")).to_have_value("2")


async def test_stale_save_offers_reload(page: Page, loom: Loom, tenant: str) -> None:
    token = loom.token(tenant)
    body = linear_process("Conflict")
    process_id = create_process(loom, token, body)
    await open_studio(page, loom, token, process_id)
    await expect(node(page, "big")).to_have_count(1)

    with loom.client(token) as client:  # someone else saves v2 meanwhile
        response = client.put(
            f"/api/v1/processes/{process_id}", json={**body, "expected_version": 1}
        )
        assert response.status_code == 200, response.text

    await select(page, "big")
    await page.locator('[data-param="expression"]').fill("input.score > 500")
    await page.locator("#btn-save").click()
    banner = page.locator("#banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("saved this process in the meantime")
    await shot(page, "05-conflict-409")
    await banner.locator('[data-action="reload"]').click()
    await expect(page.locator("#version-select")).to_have_value("2")
    await expect(page.locator("#dirty")).to_have_count(0)


async def test_socket_cut_mid_run_falls_back_to_polling(
    page: Page, loom: Loom, tenant: str
) -> None:
    token = loom.token(tenant)
    process_id = create_process(loom, token, linear_process("Cut socket", delay_s=2.5))

    sockets = {"opened": 0, "forwarded": 0, "cut": False, "terminal_before_cut": False}
    status_polls: list[str] = []
    page.on("request", lambda r: status_polls.append(r.url) if r.url.endswith("/status") else None)

    async def route(ws: WebSocketRoute) -> None:
        sockets["opened"] += 1
        if sockets["opened"] > 1:
            # Every reconnect fails for the rest of the run: polling must carry it home.
            await ws.close(code=1011, reason="kept down by the test")
            return
        server = ws.connect_to_server()

        async def from_server(message: str | bytes) -> None:
            if sockets["cut"]:
                return
            data = json.loads(message)
            if data.get("type") in {"ExecutionCompleted", "ExecutionFailed", "ExecutionCancelled"}:
                sockets["terminal_before_cut"] = True
            ws.send(message)
            sockets["forwarded"] += 1
            if data.get("type") == "snapshot":  # the snapshot arrives, then the line goes dead
                sockets["cut"] = True
                await ws.close(code=4000, reason="cut by the test")

        server.on_message(from_server)

    await page.route_web_socket(re.compile(r"/ws/executions/"), route)
    await open_studio(page, loom, token, process_id)
    await expect(node(page, "pause")).to_have_count(1)
    await page.evaluate(
        """() => {
          const conn = document.getElementById("conn");
          window.__modes = [];
          new MutationObserver(() => window.__modes.push(conn.dataset.mode))
            .observe(conn, { attributes: true, attributeFilter: ["data-mode"] });
        }"""
    )
    await page.locator("#run-input").fill(json.dumps({"amount": 80}))
    await page.locator("#btn-run").click()

    await expect(page.locator("#conn")).to_have_attribute(
        "data-mode", "polling", timeout=RUN_TIMEOUT_MS
    )
    await shot(page, "06-socket-cut-polling")
    await expect_states(
        page,
        {
            "start": "completed",
            "pause": "completed",
            "score": "completed",
            "big": "completed",
            "yes": "completed",
            "no": "skipped",
        },
    )
    await expect(page.locator("#run-summary .pill")).to_have_attribute("data-state", "completed")
    assert sockets["cut"] and not sockets["terminal_before_cut"], sockets
    assert sockets["opened"] >= 2, "the page never tried to reconnect"
    assert status_polls, "the page never polled /status after the socket dropped"
    modes = await page.evaluate("window.__modes")
    assert "polling" in modes and modes[-1] == "done", modes
    await shot(page, "07-socket-cut-completed")


async def test_another_tenants_process_is_not_found(page: Page, loom: Loom, tenant: str) -> None:
    owner = loom.token(tenant, sub="owner")
    process_id = create_process(loom, owner, linear_process("Private"))

    outsider_tenant = f"{tenant}-other"
    await open_studio(page, loom, loom.token(outsider_tenant, sub="mallory"), process_id)
    not_found = page.locator('[data-testid="not-found"]')
    await expect(not_found).to_be_visible()
    await expect(not_found).to_contain_text("Process not found")
    await expect(page.locator("svg.canvas .node")).to_have_count(0)
    await expect(page.locator(f'[data-process-id="{process_id}"]')).to_have_count(0)
    await expect(page.locator("#tenant-name")).to_have_text(outsider_tenant)
    await shot(page, "08-other-tenant-not-found")

    # The owner opens the same link and sees the process.
    await page.evaluate("sessionStorage.clear()")
    await open_studio(page, loom, owner, process_id)
    await expect(node(page, "big")).to_have_count(1)
    await expect(page.locator('[data-testid="not-found"]')).to_have_count(0)


async def test_watcher_applies_each_event_once(page: Page, loom: Loom, tenant: str) -> None:
    """The page's own fold: a snapshot, then only events past its position, each once."""
    await open_studio(page, loom, loom.token(tenant))
    result = await page.evaluate(
        """async () => {
          const { ExecutionWatcher } = await import("/studio/static/run.js");
          const watcher = new ExecutionWatcher("x");
          const seen = [];
          watcher.on("event", (e) => seen.push(e.seq));
          const ev = (seq, type, element, data = {}) =>
            ({ type, execution_id: "x", element, seq, at: null, data: { element, ...data } });
          watcher._applySnapshot({ execution_id: "x", status: "running", position: 3,
            nodes: { a: { state: "completed" }, b: { state: "running" } } });
          watcher._applyMessage(ev(2, "NodeFailed", "a", { error: "before the snapshot" }));
          watcher._applyMessage(ev(3, "NodeCompleted", "b", { output: 0 }));
          watcher._applyMessage(ev(4, "NodeCompleted", "b", { output: 1, port: "out" }));
          watcher._applyMessage(ev(4, "NodeFailed", "b", { error: "replayed" }));
          watcher._applyMessage(ev(5, "NodeSkipped", "c"));
          watcher._applySnapshot({ status: "running", position: 4, nodes: {} });
          const run = watcher.run;
          watcher.stop();
          return { seen, position: run.position, a: run.nodes.a.state, b: run.nodes.b.state,
                   output: run.nodes.b.output, c: run.nodes.c.state, mode: watcher.mode };
        }"""
    )
    assert result == {
        "seen": [4, 5],
        "position": 5,
        "a": "completed",
        "b": "completed",
        "output": 1,
        "c": "skipped",
        "mode": "idle",
    }
