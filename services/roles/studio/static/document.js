// The open process: load, switch threads, discard guard, new-process dialog, URL hash.

import { api, ApiError } from "./api.js";
import { ProcessDoc } from "./processdoc.js";
import { banner, modal, toast } from "./ui.js";
import { clear, h } from "./util.js";
import {
  $,
  app,
  canvas,
  inspector,
  navigator_,
  runPanel,
  history_,
} from "./state.js";
import { renderHeader } from "./session.js";
import { renderEmpty } from "./palette.js";
import { stopWatching, refreshOverlay } from "./runs.js";

// ---------------------------------------------------------------------------- document

export function setDoc(doc) {
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

export function onDocChange(what) {
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

export function renderThreadTabs() {
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

export function confirmDiscard() {
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

export async function openProcess(id, { version, force = false } = {}) {
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

export function showNotFound(id) {
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

export function setHash(processId) {
  const target = processId ? `#process=${encodeURIComponent(processId)}` : "";
  if (location.hash !== target)
    history.replaceState(
      history.state,
      "",
      `${location.pathname}${location.search}${target}`,
    );
}

export async function newProcessDialog() {
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
