// Routing (the URL hash picks the process) and boot: catalog, navigator, first route.
import { api, ApiError } from "./api.js";

import { Catalog } from "./catalog.js";
import { toast } from "./ui.js";

import { app, canvas, inspector, navigator_ } from "./state.js";
import { renderIdentity } from "./session.js";
import { renderEmpty, renderPalette } from "./palette.js";
import { setDoc, openProcess } from "./document.js";

import { stopWatching } from "./runs.js";
import { secrets } from "./secrets.js";
import { showSecrets } from "./secretspage.js";
import { showInbox } from "./inboxpage.js";

export function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

export async function route() {
  showSecrets(hashParams().get("view") === "secrets");
  showInbox(hashParams().get("view") === "inbox");
  const id = hashParams().get("process");
  if (id && id !== app.doc?.id) await openProcess(id);
  else if (!id && !app.doc) renderEmpty();
}

export async function loadCatalog() {
  try {
    app.catalog = new Catalog(await api("GET", "/api/v1/element-types"));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401))
      toast(`Could not load element types: ${err.message}`, "error");
  }
  renderPalette();
}

export async function boot() {
  app.booted = true;
  renderIdentity();
  await Promise.all([loadCatalog(), navigator_.load(), secrets.refresh()]);
  if (app.doc) {
    canvas.setDoc(app.doc, app.catalog);
    inspector.setContext({ doc: app.doc, catalog: app.catalog });
  }
  await route();
  renderEmpty();
  document.body.dataset.ready = "true";
}

export async function reloadAll() {
  app.doc = null;
  app.notFound = null;
  stopWatching();
  await Promise.all([loadCatalog(), navigator_.load(), secrets.refresh()]);
  setDoc(null);
  await route();
}
