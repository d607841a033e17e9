// Saving a process and showing the server's refusal on the elements it names.

import { api, ApiError } from "./api.js";
import { banner, toast } from "./ui.js";
import { $, app, canvas, inspector, navigator_, history_ } from "./state.js";
import { renderHeader } from "./session.js";
import { renderThreadTabs, openProcess, setHash } from "./document.js";

// ---------------------------------------------------------------------------- save

export function detailOf(body, fallback) {
  if (body && typeof body === "object" && typeof body.detail === "string")
    return body.detail;
  return fallback;
}

/**
 * Every error answer (services/roles/api/schemas.py ErrorOut); the optional
 * fields are left out when they do not apply. Only the fields read here:
 *
 * @typedef {object} ErrorOut
 * @property {string} detail
 * @property {string|null} [key]  the offending element (422)
 * @property {{detail: string, key: string|null}[]|null} [problems]  every broken rule of a definition
 * @property {string[]|null} [errors]  what did not decode (400)
 * @property {number|null} [version]  the current version, when `expected_version` was stale (409)
 *
 * @typedef {object} ProcessSavedOut  what a save answers (ProcessSavedOut); only the fields read here
 * @property {string} process_id
 * @property {number} version
 * @property {import("./triggers.js").TriggerOut[]} triggers  with each webhook's url, each schedule's next_at
 */

/**
 * Which elements a refusal names: `key`, its `problems` (or the `errors` that
 * did not decode), else a key quoted in the text.
 *
 * @param {ErrorOut|string|null} body  a string or null when something else than Loom answered
 */
export function problemsOf(body, fallback) {
  const problems = [];
  const error = body && typeof body === "object" ? body : null;
  for (const p of error?.problems ?? [])
    problems.push({ key: p.key ?? null, detail: p.detail });
  for (const e of error?.errors ?? []) problems.push({ key: null, detail: e });
  const top = {
    key: error?.key ?? null,
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

export async function save() {
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
    /** @type {ProcessSavedOut} */
    let result;
    if (doc.isNew) result = await api("POST", "/api/v1/processes", body);
    else
      result = await api(
        "PUT",
        `/api/v1/processes/${encodeURIComponent(doc.id)}`,
        { ...body, expected_version: doc.latest ?? doc.version },
      );
    const wasNew = doc.isNew;
    doc.id = result.process_id;
    doc.version = result.version;
    doc.latest = doc.version;
    doc.dirty = false;
    doc.setSavedTriggers(result.triggers);
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
      const current = err.body?.version ?? null;
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

export function showRefusal(err) {
  const problems = problemsOf(err.body, err.message);
  app.errors = new Map();
  for (const p of problems) {
    const key = p.key ?? "__process__";
    if (!app.errors.has(key)) app.errors.set(key, p.detail);
  }
  canvas.setErrors(app.errors);
  inspector.setErrors(app.errors);
  const first = problems.find((p) => p.key && app.doc.element(p.key));
  const trigger = problems.find((p) => p.key && app.doc.trigger(p.key));
  if (!first && trigger) {
    // A refused trigger is shown in the Triggers section of the start element.
    const start = app.doc.thread.elements.find((e) => e.type === "trigger");
    if (start) canvas.select({ kind: "node", key: start.key });
  }
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
    title:
      (first ?? trigger)
        ? `Not saved: “${(first ?? trigger).key}” needs attention.`
        : "Not saved.",
    detail: problems.map((p) => p.detail).join(" · "),
    actions: [{ id: "dismiss", label: "Dismiss", onClick: () => banner(null) }],
  });
}

export async function reloadLatest() {
  banner(null);
  if (!app.doc?.id) return;
  app.doc.dirty = false;
  await navigator_.load();
  await openProcess(app.doc.id, { force: true });
}
