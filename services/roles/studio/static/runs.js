// Running, watching, cancelling and re-running executions; the Run/History tabs.

/**
 * What a start or a rerun answers (services/usecases/executions.py
 * ExecutionOut; a rerun's RerunOut adds `rerun_of` and `from`).
 *
 * @typedef {object} ExecutionOut
 * @property {string} execution_id
 * @property {"pending"|"running"|"completed"|"failed"|"cancelled"} status
 */

import { api, ApiError } from "./api.js";
import { ExecutionWatcher } from "./run.js";
import { toast } from "./ui.js";
import { randomId } from "./util.js";
import { $, app, canvas, inspector, runPanel, history_ } from "./state.js";
import { renderHeader, setConn } from "./session.js";
import { save } from "./save.js";

// ---------------------------------------------------------------------------- run

export function readInput() {
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

export async function runProcess() {
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
    /** @type {ExecutionOut} */
    const result = await api("POST", "/api/v1/executions", body, {
      headers: { "Idempotency-Key": randomId() },
    });
    const id = result.execution_id;
    watch(id);
    history_.load();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401))
      toast(`Could not start: ${err.message}`, "error");
  } finally {
    renderHeader();
  }
}

export function watch(executionId) {
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
        .then((body) => app.watcher === watcher && runPanel.setEvents(body))
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
          if (app.watcher === watcher) runPanel.setEvents(body);
        })
        .catch(() => {});
      history_.load();
    }
  });
  watcher.on("problem", (text) => toast(text, "error"));
  watcher.start();
}

export function stopWatching() {
  if (app.watcher) app.watcher.stop();
  app.watcher = null;
  app.liveRun = null;
  setConn("idle");
}

export async function cancelExecution() {
  const id = app.watcher?.id;
  if (!id) return;
  try {
    await api("POST", `/api/v1/executions/${encodeURIComponent(id)}/cancel`);
    toast("Cancellation requested.");
  } catch (err) {
    toast(`Could not cancel: ${err.message}`, "error");
  }
}

export async function rerun(executionId, key) {
  if (!executionId || !key) return;
  try {
    /** @type {ExecutionOut} */
    const result = await api(
      "POST",
      `/api/v1/executions/${encodeURIComponent(executionId)}/rerun`,
      { from: key },
      { headers: { "Idempotency-Key": randomId() } },
    );
    const id = result.execution_id;
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

export function shownRun() {
  if (app.tab === "history")
    return {
      run: history_.shownRun,
      label: history_.shownRun ? "history" : "",
    };
  return { run: app.liveRun, label: app.liveRun ? "live" : "" };
}

export function refreshOverlay() {
  const { run, label } = shownRun();
  canvas.setRun(run);
  inspector.setRun(
    run,
    label === "history" && run ? `#${history_.selected?.seq ?? ""}` : label,
  );
}

export function switchTab(tab) {
  app.tab = tab;
  for (const button of document.querySelectorAll(".tab"))
    button.classList.toggle("active", button.dataset.tab === tab);
  $("panel-run").hidden = tab !== "run";
  $("panel-history").hidden = tab !== "history";
  if (tab === "history" && history_.processId && !history_.items.length)
    history_.load();
  refreshOverlay();
}
