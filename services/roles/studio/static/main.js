// Loom Studio: wires the navigator, palette, canvas, inspector and bottom panel
// to the REST API and the execution WebSocket.

import { api, ApiError, auth, listOf, takeTokenFromHash } from "./api.js";
import { Canvas, NODE_W } from "./canvas.js";
import { logoSvg, typeColor, typeIcon } from "./icons.js";
import { Inspector } from "./inspector.js";
import { Catalog, ProcessDoc } from "./model.js";
import { Navigator } from "./navigator.js";
import { HistoryPanel, modeText, RunPanel } from "./panel.js";
import { ExecutionWatcher } from "./run.js";
import { banner, closeModal, modal, toast } from "./ui.js";
import { clear, h, isTyping, randomId } from "./util.js";

const $ = (id) => document.getElementById(id);

const app = {
  catalog: new Catalog([]),
  doc: null,
  notFound: null,
  watcher: null,
  liveRun: null,
  tab: "run",
  booted: false,
  saving: false,
  errors: new Map(),
};

const canvas = new Canvas($("canvas-wrap"));
const inspector = new Inspector($("inspector"));
const navigator_ = new Navigator($("navigator"));
const runPanel = new RunPanel();
const history_ = new HistoryPanel();

// ---------------------------------------------------------------------------- identity

function renderIdentity() {
  const tenant = auth.tenant;
  $("tenant-name").textContent = tenant
    ? tenant
    : auth.token
      ? "unknown tenant"
      : "not signed in";
  $("sub-name").textContent = auth.subject
    ? auth.subject
    : auth.token
      ? ""
      : "paste a token";
  const initials =
    (auth.subject || tenant || "?")
      .replace(/[^A-Za-z0-9]/g, "")
      .slice(0, 2)
      .toUpperCase() || "?";
  $("avatar").textContent = initials;
  $("identity").dataset.tenant = tenant || "";
  $("identity").title = tenant
    ? `Tenant ${tenant}${auth.subject ? ` · ${auth.subject}` : ""} — change token`
    : "Paste a token";
}

function tokenDialog(message) {
  const info = auth.token
    ? h(
        "div",
        { class: "muted small" },
        `Current: tenant ${auth.tenant ?? "?"}, ${auth.subject ?? "?"}`,
        auth.claims?.exp
          ? ` · expires ${new Date(auth.claims.exp * 1000).toLocaleString()}`
          : "",
        " · ",
        h(
          "a",
          {
            href: "#",
            onClick: (e) => {
              e.preventDefault();
              auth.clear();
              closeModal();
              tokenDialog();
            },
          },
          "Sign out",
        ),
      )
    : null;
  modal({
    id: "token",
    title: message ? "Sign in again" : "Sign in to Loom",
    text: message
      ? `${message} Paste a fresh token.`
      : "Paste a Loom token (JWT). `make run` prints a link that signs you in; `loom token --tenant T --sub U` mints one.",
    fields: [
      {
        name: "token",
        label: "Token",
        rows: 4,
        mono: true,
        placeholder: "eyJhbGciOi…",
      },
    ],
    submitLabel: "Use token",
    cancelLabel: auth.token ? "Cancel" : null,
    extra: info,
    onSubmit: async ({ token }) => {
      if (!token) return "Paste a token first.";
      auth.set(token);
      if (!auth.claims)
        return "That does not look like a JWT (three dot-separated parts).";
      if (!auth.tenant) return "The token has no tenant_id claim.";
      if (auth.expired) return "That token has expired.";
      renderIdentity();
      if (!app.booted) await boot();
      else await reloadAll();
      return null;
    },
  });
}

auth.on("unauthorized", (detail) => {
  if (document.querySelector('[data-modal="token"]')) return;
  tokenDialog(`Loom refused the token (${detail}).`);
});

// ---------------------------------------------------------------------------- header

function renderHeader() {
  const crumbs = clear($("crumbs"));
  const doc = app.doc;
  $("btn-save").disabled = !doc;
  $("btn-run").disabled = !doc;
  $("btn-run-2").disabled = !doc;
  if (!doc) {
    if (app.notFound)
      crumbs.append(h("span", { class: "crumb current" }, "Process not found"));
    return;
  }
  crumbs.append(
    h("span", { class: "crumb", title: "Project" }, doc.project || "—"),
    h("span", { class: "sep" }, "/"),
    h("span", { class: "crumb", title: "App" }, doc.app || "—"),
    h("span", { class: "sep" }, "/"),
    h(
      "span",
      { class: "crumb current", id: "process-title" },
      doc.name || "Untitled",
    ),
  );
  if (doc.id && doc.latest) {
    const select = h(
      "select",
      {
        class: "version",
        "aria-label": "Version",
        id: "version-select",
        onChange: (e) =>
          openProcess(doc.id, { version: Number(e.target.value) }),
      },
      ...Array.from({ length: doc.latest }, (_, i) => doc.latest - i).map((v) =>
        h(
          "option",
          { value: String(v) },
          v === doc.latest ? `v${v} · latest` : `v${v}`,
        ),
      ),
    );
    select.value = String(doc.version ?? doc.latest);
    crumbs.append(select);
  }
  if (doc.isNew)
    crumbs.append(
      h("span", { class: "dirty-dot", id: "dirty" }, "New · not saved"),
    );
  else if (doc.dirty)
    crumbs.append(
      h("span", { class: "dirty-dot", id: "dirty" }, "Unsaved changes"),
    );
}

function setConn(mode) {
  const conn = $("conn");
  conn.hidden = !mode || mode === "idle";
  conn.dataset.mode = mode || "idle";
  conn.textContent = modeText(mode);
  conn.title =
    {
      live: "Receiving events over the WebSocket",
      polling:
        "WebSocket down: polling /status every second while reconnecting",
      connecting: "Opening the WebSocket",
      done: "The execution has finished",
      error: "The execution cannot be followed",
    }[mode] ?? "";
}

// ---------------------------------------------------------------------------- empty states

function renderEmpty() {
  const root = clear($("canvas-empty"));
  const hasDoc = Boolean(app.doc);
  $("canvas-tools").hidden = !hasDoc;
  $("canvas-hint").hidden = !hasDoc;
  if (hasDoc) return;
  if (app.notFound) {
    root.append(
      h(
        "div",
        { class: "empty-card not-found", "data-testid": "not-found" },
        h("div", { class: "empty-icon" }, typeIcon("fail", 24)),
        h("h2", {}, "Process not found"),
        h(
          "p",
          {},
          "There is no process ",
          h("code", {}, app.notFound),
          auth.tenant ? ` in tenant “${auth.tenant}”.` : ".",
          " It may have been deleted, or it belongs to another tenant.",
        ),
        h(
          "div",
          { class: "empty-actions" },
          h(
            "button",
            { type: "button", class: "btn primary", onClick: newProcessDialog },
            "+ New process",
          ),
        ),
      ),
    );
    return;
  }
  if (!auth.token) return;
  root.append(
    h(
      "div",
      { class: "empty-card" },
      h("div", { class: "empty-icon" }, typeIcon("join", 24)),
      h("h2", {}, "Design a process"),
      h(
        "p",
        {},
        "Open a process on the left, or create one: drag elements onto the canvas, connect their ports, save, and run it to watch every step live.",
      ),
      h(
        "div",
        { class: "empty-actions" },
        h(
          "button",
          { type: "button", class: "btn primary", onClick: newProcessDialog },
          "+ New process",
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------- palette

function renderPalette() {
  const root = clear($("palette"));
  const filter = $("palette-filter").value.trim().toLowerCase();
  const types = app.catalog
    .list()
    .filter(
      (t) =>
        !filter ||
        t.type.includes(filter) ||
        t.description.toLowerCase().includes(filter),
    );
  if (!types.length) {
    root.append(
      h(
        "div",
        { class: "tree-empty" },
        app.catalog.list().length
          ? "No element matches."
          : "Loading element types…",
      ),
    );
    return;
  }
  for (const info of types) {
    const item = h(
      "div",
      {
        class: "palette-item",
        "data-palette-type": info.type,
        title: `${info.type}: ${info.description}\nDrag onto the canvas, or click to add.`,
        role: "button",
        tabindex: "0",
        onKeydown: (e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            addElementAt(info.type, canvas.freeSpot());
          }
        },
      },
      h("span", { class: "pi-icon" }, typeIcon(info.type, 18)),
      h(
        "span",
        { class: "pi-text" },
        h(
          "span",
          { class: "pi-name" },
          info.type,
          info.sideEffects
            ? h("span", { class: "fx", title: "Has side effects" }, "EFFECT")
            : null,
        ),
        h("span", { class: "pi-desc" }, info.description),
      ),
    );
    item.style.setProperty("--type-color", typeColor(info.type));
    item
      .querySelector(".pi-icon")
      .style.setProperty("--type-color", typeColor(info.type));
    item.addEventListener("pointerdown", (e) =>
      startPaletteDrag(e, info.type, item),
    );
    root.append(item);
  }
}

function startPaletteDrag(event, type, item) {
  if (event.button !== 0) return;
  event.preventDefault();
  const start = { x: event.clientX, y: event.clientY };
  let ghost = null;
  const move = (e) => {
    if (!ghost && Math.hypot(e.clientX - start.x, e.clientY - start.y) < 4)
      return;
    if (!ghost) {
      ghost = item.cloneNode(true);
      ghost.classList.add("drag-ghost");
      document.body.append(ghost);
    }
    ghost.style.left = `${e.clientX}px`;
    ghost.style.top = `${e.clientY}px`;
  };
  const up = (e) => {
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    window.removeEventListener("pointercancel", up);
    if (ghost) {
      ghost.remove();
      if (canvas.contains(e.clientX, e.clientY)) {
        const world = canvas.toWorld(e.clientX, e.clientY);
        addElementAt(type, { x: world.x - NODE_W / 2, y: world.y - 32 });
      }
    } else {
      addElementAt(type, canvas.freeSpot());
    }
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
  window.addEventListener("pointercancel", up);
}

function addElementAt(type, position) {
  if (!app.doc) {
    toast("Create or open a process first.", "warn");
    return;
  }
  if (
    type === "trigger" &&
    app.doc.thread.elements.some((e) => e.type === "trigger")
  ) {
    toast("A thread has exactly one trigger; this one already has it.", "warn");
  }
  const key = app.doc.addElement(type, position);
  canvas.select({ kind: "node", key });
}

// ---------------------------------------------------------------------------- document

function setDoc(doc) {
  app.doc = doc;
  app.notFound = null;
  app.errors = new Map();
  if (doc) {
    doc.layoutMissing();
    doc.on("change", onDocChange);
    doc.on("meta", renderHeader);
  }
  canvas.setDoc(doc, app.catalog);
  inspector.setContext({ doc, catalog: app.catalog });
  renderThreadTabs();
  renderHeader();
  renderEmpty();
  banner(null);
  requestAnimationFrame(() => canvas.fit());
}

function onDocChange(what) {
  const touched = what.edited ?? what.moved ?? null;
  if (what.renamed) {
    const [from, to] = what.renamed;
    if (app.errors.has(from)) app.errors.delete(from);
    if (canvas.selection?.kind === "node" && canvas.selection.key === from) {
      canvas.selection = { kind: "node", key: to };
      inspector.selection = { kind: "node", key: to };
    }
  }
  if (what.edited && app.errors.has(touched)) {
    app.errors.delete(touched);
    inspector.errors.delete(touched);
    document
      .querySelectorAll(`.insp-error[data-error-for="${CSS.escape(touched)}"]`)
      .forEach((n) => n.remove());
    canvas.errors = new Map(app.errors);
  }
  canvas.render();
  if (
    what.added ||
    what.removed ||
    what.connected ||
    what.disconnected !== undefined ||
    what.renamed
  ) {
    if (what.removed && canvas.selection?.key === what.removed)
      canvas.select(null);
    else inspector.render();
  }
  renderHeader();
}

function renderThreadTabs() {
  const root = clear($("thread-tabs"));
  const doc = app.doc;
  root.hidden = !doc || doc.threads.length < 2;
  if (root.hidden) return;
  doc.threads.forEach((thread, index) => {
    root.append(
      h(
        "button",
        {
          type: "button",
          class: `thread-tab ${index === doc.threadIndex ? "active" : ""}`,
          onClick: () => {
            doc.threadIndex = index;
            canvas.select(null);
            renderThreadTabs();
            canvas.fit();
          },
        },
        thread.name || thread.key,
      ),
    );
  });
}

function confirmDiscard() {
  if (!app.doc?.dirty) return Promise.resolve(true);
  return new Promise((resolve) => {
    modal({
      id: "discard",
      title: "Discard unsaved changes?",
      text: `“${app.doc.name || "This process"}” has changes that are not saved.`,
      submitLabel: "Discard changes",
      cancelLabel: "Keep editing",
      onSubmit: () => resolve(true),
    });
    const root = $("modal-root");
    const obs = new MutationObserver(() => {
      if (!root.firstChild) {
        obs.disconnect();
        resolve(false);
      }
    });
    obs.observe(root, { childList: true });
  });
}

async function openProcess(id, { version, force = false } = {}) {
  if (
    !force &&
    app.doc &&
    app.doc.dirty &&
    !(app.doc.id === id && version === undefined)
  ) {
    if (!(await confirmDiscard())) {
      renderHeader();
      return;
    }
  }
  const query = version ? `?version=${encodeURIComponent(version)}` : "";
  let body;
  try {
    body = await api(
      "GET",
      `/api/v1/processes/${encodeURIComponent(id)}${query}`,
    );
  } catch (err) {
    if (
      err instanceof ApiError &&
      (err.status === 404 || err.status === 422 || err.status === 400)
    ) {
      showNotFound(id);
    } else if (!(err instanceof ApiError && err.status === 401)) {
      toast(`Could not open the process: ${err.message}`, "error");
    }
    return;
  }
  const entry = navigator_.find(id);
  const doc = ProcessDoc.fromServer(body, {
    id,
    project: entry?.project.name,
    app: entry?.app.name,
    name: entry?.process.name,
    latest: Math.max(
      entry?.process.version ?? 0,
      app.doc?.id === id ? (app.doc.latest ?? 0) : 0,
    ),
  });
  const sameProcess = app.doc?.id === doc.id;
  setDoc(doc);
  setHash(doc.id);
  navigator_.setActive(doc.id);
  if (!sameProcess) {
    stopWatching();
    runPanel.reset();
    history_.setProcess(doc.id);
  }
  refreshOverlay();
}

function showNotFound(id) {
  stopWatching();
  app.doc = null;
  app.notFound = id;
  canvas.setDoc(null, app.catalog);
  inspector.setContext({ doc: null, catalog: app.catalog });
  navigator_.setActive(null);
  history_.setProcess(null);
  runPanel.reset();
  renderThreadTabs();
  renderHeader();
  renderEmpty();
}

function setHash(processId) {
  const target = processId ? `#process=${encodeURIComponent(processId)}` : "";
  if (location.hash !== target)
    history.replaceState(
      history.state,
      "",
      `${location.pathname}${location.search}${target}`,
    );
}

async function newProcessDialog() {
  if (!(await confirmDiscard())) return;
  const current = app.doc;
  const projects = navigator_.projectNames();
  const project = current?.project || projects[0] || "";
  modal({
    id: "new-process",
    title: "New process",
    text: "Project and app are created the first time their name is used.",
    fields: [
      {
        name: "project",
        label: "Project",
        value: project,
        placeholder: "e.g. Sales",
        list: projects,
      },
      {
        name: "app",
        label: "App",
        value: current?.app || navigator_.appNames(project)[0] || "",
        placeholder: "e.g. Leads",
        list: navigator_.appNames(project),
      },
      {
        name: "name",
        label: "Process name",
        value: "",
        placeholder: "e.g. Qualify lead",
      },
    ],
    submitLabel: "Create",
    onSubmit: async (values) => {
      if (!values.project || !values.app || !values.name)
        return "Project, app and name are all needed.";
      stopWatching();
      runPanel.reset();
      setDoc(ProcessDoc.blank(values));
      setHash(null);
      navigator_.setActive(null);
      history_.setProcess(null);
      refreshOverlay();
      return null;
    },
  });
}

// ---------------------------------------------------------------------------- save

function detailOf(body, fallback) {
  if (body && typeof body === "object" && typeof body.detail === "string")
    return body.detail;
  return fallback;
}

/** Which elements a refusal names: `key`, or a list of problems, else a key quoted in the text. */
function problemsOf(body, fallback) {
  const problems = [];
  const list =
    body?.problems ??
    body?.errors ??
    body?.extra?.problems ??
    (Array.isArray(body?.extra) ? body.extra : null) ??
    (Array.isArray(body?.detail) ? body.detail : null);
  if (Array.isArray(list)) {
    for (const p of list) {
      if (p && typeof p === "object")
        problems.push({
          key: p.key ?? p.element ?? p.element_key ?? null,
          detail: p.detail ?? p.message ?? p.msg ?? JSON.stringify(p),
        });
      else problems.push({ key: null, detail: String(p) });
    }
  }
  const top = {
    key:
      body?.key ??
      body?.element ??
      body?.element_key ??
      body?.extra?.key ??
      body?.extra?.element ??
      null,
    detail: detailOf(body, fallback),
  };
  if (!problems.length) problems.push(top);
  else if (top.key && !problems.some((p) => p.key === top.key))
    problems.unshift(top);
  const keys = app.doc
    ? app.doc
        .allElements()
        .map((e) => e.key)
        .sort((a, b) => b.length - a.length)
    : [];
  for (const p of problems) {
    if (p.key || !p.detail) continue;
    const hit = keys.find((k) =>
      [`'${k}'`, `"${k}"`, `\`${k}\``, `“${k}”`].some((q) =>
        p.detail.includes(q),
      ),
    );
    if (hit) p.key = hit;
  }
  return problems;
}

async function save() {
  const doc = app.doc;
  if (!doc || app.saving) return false;
  if (!doc.dirty && !doc.isNew) {
    toast(`Nothing to save: v${doc.version} is current.`);
    return true;
  }
  if (!doc.project || !doc.app || !doc.name) {
    canvas.select(null);
    toast(
      "Give the process a project, an app and a name (in the inspector).",
      "warn",
    );
    return false;
  }
  app.saving = true;
  $("btn-save").disabled = true;
  const body = doc.toDefinition();
  try {
    let result;
    if (doc.isNew) result = await api("POST", "/api/v1/processes", body);
    else
      result = await api(
        "PUT",
        `/api/v1/processes/${encodeURIComponent(doc.id)}`,
        { ...body, expected_version: doc.latest ?? doc.version },
      );
    const wasNew = doc.isNew;
    doc.id = result?.process_id ?? result?.id ?? doc.id;
    doc.version = Number(result?.version ?? (doc.latest ?? 0) + 1);
    doc.latest = doc.version;
    doc.dirty = false;
    app.errors = new Map();
    canvas.setErrors(app.errors);
    inspector.setErrors(app.errors);
    banner(null);
    setHash(doc.id);
    renderHeader();
    toast(`Saved “${doc.name}” as v${doc.version}.`, "success");
    await navigator_.load();
    navigator_.setActive(doc.id);
    if (wasNew) history_.setProcess(doc.id);
    return true;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 422 || err.status === 400)) {
      showRefusal(err);
    } else if (err instanceof ApiError && err.status === 409) {
      const current =
        Number(err.body?.version ?? err.body?.latest_version ?? 0) || null;
      banner({
        id: "conflict",
        kind: "error",
        title: "Someone saved this process in the meantime.",
        detail: `Your changes were not saved: you edited v${doc.latest}, but ${current ? `v${current}` : "a newer version"} is the latest now. Reload to get it (your changes will be lost), or keep editing.`,
        actions: [
          {
            id: "reload",
            label: "Reload",
            primary: true,
            onClick: () => reloadLatest(),
          },
          { id: "dismiss", label: "Keep editing", onClick: () => banner(null) },
        ],
      });
    } else if (!(err instanceof ApiError && err.status === 401)) {
      toast(`Not saved: ${err.message}`, "error");
    }
    return false;
  } finally {
    app.saving = false;
    renderHeader();
  }
}

function showRefusal(err) {
  const problems = problemsOf(err.body, err.message);
  app.errors = new Map();
  for (const p of problems) {
    const key = p.key ?? "__process__";
    if (!app.errors.has(key)) app.errors.set(key, p.detail);
  }
  canvas.setErrors(app.errors);
  inspector.setErrors(app.errors);
  const first = problems.find((p) => p.key && app.doc.element(p.key));
  if (first) {
    const thread = app.doc.threadOf(first.key);
    const index = app.doc.threads.indexOf(thread);
    if (index >= 0 && index !== app.doc.threadIndex) {
      app.doc.threadIndex = index;
      renderThreadTabs();
    }
    canvas.select({ kind: "node", key: first.key });
  }
  banner({
    id: "refused",
    kind: "error",
    title: first ? `Not saved: “${first.key}” needs attention.` : "Not saved.",
    detail: problems.map((p) => p.detail).join(" · "),
    actions: [{ id: "dismiss", label: "Dismiss", onClick: () => banner(null) }],
  });
}

async function reloadLatest() {
  banner(null);
  if (!app.doc?.id) return;
  app.doc.dirty = false;
  await navigator_.load();
  await openProcess(app.doc.id, { force: true });
}

// ---------------------------------------------------------------------------- run

function readInput() {
  const area = $("run-input");
  const raw = area.value.trim();
  if (!raw) return { ok: true, value: {} };
  try {
    const value = JSON.parse(raw);
    area.classList.remove("invalid");
    $("input-state").textContent = "JSON";
    return { ok: true, value };
  } catch (err) {
    area.classList.add("invalid");
    $("input-state").textContent = "invalid JSON";
    return { ok: false, error: err.message };
  }
}

async function runProcess() {
  if (!app.doc) return;
  const input = readInput();
  if (!input.ok) {
    toast(`The input is not valid JSON: ${input.error}`, "error");
    return;
  }
  if (app.doc.dirty || app.doc.isNew) {
    const saved = await save();
    if (!saved) return;
  }
  const doc = app.doc;
  $("btn-run").disabled = true;
  $("btn-run-2").disabled = true;
  try {
    const body = { process_id: doc.id, input: input.value };
    if (doc.version) body.version = doc.version;
    const result = await api("POST", "/api/v1/executions", body, {
      headers: { "Idempotency-Key": randomId() },
    });
    const id = result?.execution_id ?? result?.id;
    if (!id) throw new Error("Loom did not answer an execution id.");
    watch(id);
    history_.load();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401))
      toast(`Could not start: ${err.message}`, "error");
  } finally {
    renderHeader();
  }
}

function watch(executionId) {
  stopWatching();
  switchTab("run");
  const watcher = new ExecutionWatcher(executionId);
  app.watcher = watcher;
  app.liveRun = watcher.run;
  runPanel.reset("Starting…");
  runPanel.update(watcher.run, "connecting");
  let backfilled = false;
  watcher.on("update", (run) => {
    if (app.watcher !== watcher) return;
    if (!backfilled && run.position > 0) {
      // Events before the snapshot are not streamed: fetch them once for the log.
      backfilled = true;
      api("GET", `/api/v1/executions/${encodeURIComponent(executionId)}/events`)
        .then(
          (body) =>
            app.watcher === watcher &&
            runPanel.setEvents(listOf(body, "events")),
        )
        .catch(() => {});
    }
    app.liveRun = run;
    runPanel.update(run, watcher.mode);
    refreshOverlay();
  });
  watcher.on("event", (event) => runPanel.addEvent(event));
  watcher.on("mode", (mode) => {
    if (app.watcher !== watcher) return;
    setConn(mode);
    runPanel.update(watcher.run, mode);
    if (mode === "done") {
      api("GET", `/api/v1/executions/${encodeURIComponent(executionId)}/events`)
        .then((body) => {
          if (app.watcher === watcher)
            runPanel.setEvents(listOf(body, "events"));
        })
        .catch(() => {});
      history_.load();
    }
  });
  watcher.on("problem", (text) => toast(text, "error"));
  watcher.start();
}

function stopWatching() {
  if (app.watcher) app.watcher.stop();
  app.watcher = null;
  app.liveRun = null;
  setConn("idle");
}

async function cancelExecution() {
  const id = app.watcher?.id;
  if (!id) return;
  try {
    await api("POST", `/api/v1/executions/${encodeURIComponent(id)}/cancel`);
    toast("Cancellation requested.");
  } catch (err) {
    toast(`Could not cancel: ${err.message}`, "error");
  }
}

async function rerun(executionId, key) {
  if (!executionId || !key) return;
  try {
    const result = await api(
      "POST",
      `/api/v1/executions/${encodeURIComponent(executionId)}/rerun`,
      { from: key },
      { headers: { "Idempotency-Key": randomId() } },
    );
    const id = result?.execution_id ?? result?.id;
    if (!id) throw new Error("Loom did not answer an execution id.");
    toast(`Re-running from “${key}”.`, "success");
    watch(id);
    history_.load();
  } catch (err) {
    if (
      err instanceof ApiError &&
      (err.status === 404 || err.status === 405) &&
      !err.body?.detail
    )
      toast("This server does not offer re-runs yet.", "warn");
    else if (!(err instanceof ApiError && err.status === 401))
      toast(`Could not re-run: ${err.message}`, "error");
  }
}

function shownRun() {
  if (app.tab === "history")
    return {
      run: history_.shownRun,
      label: history_.shownRun ? "history" : "",
    };
  return { run: app.liveRun, label: app.liveRun ? "live" : "" };
}

function refreshOverlay() {
  const { run, label } = shownRun();
  canvas.setRun(run);
  inspector.setRun(
    run,
    label === "history" && run ? `#${history_.selected?.seq ?? ""}` : label,
  );
}

function switchTab(tab) {
  app.tab = tab;
  for (const button of document.querySelectorAll(".tab"))
    button.classList.toggle("active", button.dataset.tab === tab);
  $("panel-run").hidden = tab !== "run";
  $("panel-history").hidden = tab !== "history";
  if (tab === "history" && history_.processId && !history_.items.length)
    history_.load();
  refreshOverlay();
}

// ---------------------------------------------------------------------------- routing & boot

function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

async function route() {
  const id = hashParams().get("process");
  if (id && id !== app.doc?.id) await openProcess(id);
  else if (!id && !app.doc) renderEmpty();
}

async function loadCatalog() {
  try {
    app.catalog = new Catalog(await api("GET", "/api/v1/element-types"));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401))
      toast(`Could not load element types: ${err.message}`, "error");
  }
  renderPalette();
}

async function boot() {
  app.booted = true;
  renderIdentity();
  await Promise.all([loadCatalog(), navigator_.load()]);
  if (app.doc) {
    canvas.setDoc(app.doc, app.catalog);
    inspector.setContext({ doc: app.doc, catalog: app.catalog });
  }
  await route();
  renderEmpty();
  document.body.dataset.ready = "true";
}

async function reloadAll() {
  app.doc = null;
  app.notFound = null;
  stopWatching();
  await Promise.all([loadCatalog(), navigator_.load()]);
  setDoc(null);
  await route();
}

function wire() {
  $("brand-logo").append(logoSvg(24));
  $("btn-save").addEventListener("click", () => save());
  $("btn-run").addEventListener("click", () => runProcess());
  $("btn-run-2").addEventListener("click", () => runProcess());
  $("btn-new").addEventListener("click", () => newProcessDialog());
  $("identity").addEventListener("click", () => tokenDialog());
  $("palette-filter").addEventListener("input", renderPalette);
  $("zoom-in").addEventListener("click", () => canvas.zoomBy(1.2));
  $("zoom-out").addEventListener("click", () => canvas.zoomBy(1 / 1.2));
  $("zoom-fit").addEventListener("click", () => canvas.fit());
  $("run-input").addEventListener("input", () => readInput());
  for (const button of document.querySelectorAll(".tab"))
    button.addEventListener("click", () => switchTab(button.dataset.tab));

  canvas.on("select", (selection) => {
    inspector.select(selection);
    if (selection?.kind === "node") history_.setSelectedKey(selection.key);
  });
  canvas.on("view", (view) => {
    $("zoom-level").textContent = `${Math.round(view.k * 100)}%`;
  });
  canvas.on("notice", (text) => toast(text, "warn"));
  inspector.on("delete", (selection) => removeSelection(selection));
  inspector.on("meta", renderHeader);
  inspector.on("rerun", (key) => {
    const run = shownRun().run;
    if (run?.execution_id) rerun(run.execution_id, key);
  });
  runPanel.on("cancel", cancelExecution);
  runPanel.on(
    "focus",
    (key) =>
      key && app.doc?.element(key) && canvas.select({ kind: "node", key }),
  );
  history_.on("show", () => refreshOverlay());
  history_.on("rerun", ({ executionId, key }) => rerun(executionId, key));
  history_.on(
    "focus",
    (key) =>
      key && app.doc?.element(key) && canvas.select({ kind: "node", key }),
  );
  history_.on("count", (n) => {
    $("tab-history").replaceChildren(
      "History",
      n ? h("span", { class: "count" }, String(n)) : "",
    );
  });

  document.addEventListener("keydown", (e) => {
    const mod = e.ctrlKey || e.metaKey;
    if (mod && e.key.toLowerCase() === "s") {
      e.preventDefault();
      save();
      return;
    }
    if (mod && e.key === "Enter") {
      e.preventDefault();
      runProcess();
      return;
    }
    if (isTyping(e.target) || document.querySelector(".modal-backdrop")) return;
    if ((e.key === "Delete" || e.key === "Backspace") && canvas.selection) {
      e.preventDefault();
      removeSelection(canvas.selection);
    } else if (e.key === "Escape" && canvas.selection) {
      canvas.select(null);
    }
  });

  window.addEventListener("hashchange", async () => {
    const token = takeTokenFromHash();
    if (token) {
      auth.set(token);
      renderIdentity();
      if (!app.booted) return boot();
      closeModal();
      return reloadAll();
    }
    if (app.booted) await route();
  });
  window.addEventListener("beforeunload", (e) => {
    if (app.doc?.dirty) {
      e.preventDefault();
      e.returnValue = "";
    }
  });

  // Resize the bottom panel.
  $("bottom-resize").addEventListener("pointerdown", (e) => {
    e.preventDefault();
    const startY = e.clientY;
    const startH = $("bottom").getBoundingClientRect().height;
    const move = (ev) =>
      document.documentElement.style.setProperty(
        "--bottom-h",
        `${Math.max(120, Math.min(window.innerHeight * 0.7, startH - (ev.clientY - startY)))}px`,
      );
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  });
}

function removeSelection(selection) {
  if (!app.doc || !selection) return;
  if (selection.kind === "node") {
    app.doc.removeElement(selection.key);
    app.errors.delete(selection.key);
    canvas.errors.delete(selection.key);
  } else if (selection.kind === "edge") {
    app.doc.removeConnection(selection.index);
  }
  canvas.select(null);
}

function start() {
  wire();
  const token = takeTokenFromHash();
  if (token) auth.set(token);
  else auth.load();
  renderIdentity();
  renderHeader();
  renderPalette();
  navigator_.render();
  inspector.render();
  renderEmpty();
  if (!auth.token) {
    navigator_.loaded = true;
    navigator_.error = "sign in first";
    navigator_.render();
    tokenDialog();
    return;
  }
  boot();
}

start();
