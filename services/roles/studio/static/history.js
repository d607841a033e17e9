// The History tab's list: the process's executions, newest first, a page at a
// time, each with how it was started (triggers.js), and opening one (its status and events) to show on the canvas. What an
// opened execution shows below the list — its head, the time slider, the
// timeline — is historydetail.js; stepping through it is timetravel.js.

import { api, ApiError } from "./api.js";
import { renderDetail, renderLabel, renderTimeline } from "./historydetail.js";
import { foldEvents, fromStatus } from "./run.js";
import { probeStateApi, stepTo } from "./timetravel.js";
import { startedHow } from "./triggers.js";
import { clear, duration, Emitter, h, relativeTime, shortId } from "./util.js";

/**
 * The shapes of `GET /api/v1/executions` (services/usecases/executions.py
 * ExecutionPage, projections/status.py ExecutionSummary).
 *
 * @typedef {object} ExecutionSummary  a listed execution: its status document without nodes and input
 * @property {string} execution_id
 * @property {string|null} process_id
 * @property {number|null} version
 * @property {"pending"|"running"|"completed"|"failed"|"cancelled"} status
 * @property {*} output
 * @property {string|null} error
 * @property {number} position
 * @property {string|null} started_at
 * @property {string|null} finished_at
 * @property {string|null} started_by
 * @property {string|null} rerun_of
 * @property {import("./triggers.js").ExecutionTrigger} [trigger]  what started it; absent on very old executions
 *
 * @typedef {object} ExecutionPage
 * @property {ExecutionSummary[]} items  newest first
 * @property {string|null} next_cursor  null on the last page
 *
 * @typedef {import("./run.js").EventMessage & {actor: string}} EventRow  a row of `GET …/events`
 */

/** A listed execution as a row of the list shows it. */
function listed(/** @type {ExecutionSummary} */ summary) {
  return {
    id: summary.execution_id,
    status: summary.status,
    version: summary.version,
    started_at: summary.started_at,
    completed_at: summary.finished_at,
    created_by: summary.started_by,
    rerun_of: summary.rerun_of,
    trigger: summary.trigger,
  };
}

/**
 * The History tab. Emits "show" (run|null) when the canvas should show an
 * execution's state, "rerun" ({executionId, key}) and "focus" (key).
 */
export class HistoryPanel extends Emitter {
  constructor() {
    super();
    this.listEl = document.getElementById("exec-list");
    this.detailEl = document.getElementById("history-detail");
    document
      .getElementById("history-refresh")
      .addEventListener("click", () => this.load());
    this.processId = null;
    this.items = [];
    this.cursor = null;
    this.selected = null; // {id, status, events, run, seq, maxSeq}
    this.selectedKey = null;
    this.stateApi = undefined; // unknown until tried; then true/false
    this.stateTimer = null;
    this.loadSeq = 0;
  }

  setProcess(processId) {
    this.processId = processId;
    this.items = [];
    this.cursor = null;
    this.selected = null;
    this._renderDetail();
    this.load();
  }

  setSelectedKey(key) {
    this.selectedKey = key;
    const select = this.detailEl.querySelector("select[data-rerun-key]");
    if (select && key && [...select.options].some((o) => o.value === key))
      select.value = key;
  }

  async load(more = false) {
    const ticket = ++this.loadSeq;
    if (!this.processId) {
      clear(this.listEl).append(
        h(
          "div",
          { class: "empty-note" },
          "Save the process to keep a history of its executions.",
        ),
      );
      return;
    }
    const params = new URLSearchParams({
      process_id: this.processId,
      limit: "50",
    });
    if (more && this.cursor) params.set("cursor", this.cursor);
    try {
      /** @type {ExecutionPage} */
      const body = await api("GET", `/api/v1/executions?${params}`);
      if (ticket !== this.loadSeq) return;
      const page = body.items.map(listed);
      this.items = more ? [...this.items, ...page] : page;
      this.cursor = body.next_cursor;
    } catch (err) {
      if (ticket !== this.loadSeq) return;
      clear(this.listEl).append(
        h(
          "div",
          { class: "empty-note" },
          `Could not load executions: ${err.message}`,
        ),
      );
      return;
    }
    this._renderList();
    this.emit("count", this.items.length);
  }

  _renderList() {
    clear(this.listEl);
    if (!this.items.length) {
      this.listEl.append(
        h("div", { class: "empty-note" }, "No executions yet."),
      );
      return;
    }
    for (const item of this.items) {
      this.listEl.append(
        h(
          "button",
          {
            type: "button",
            class: `exec-row ${this.selected?.id === item.id ? "active" : ""}`,
            "data-execution-id": item.id,
            "data-status": item.status,
            onClick: () => this.open(item.id),
          },
          h("span", {
            class: `status-dot s-${item.status}`,
            title: item.status,
          }),
          h(
            "span",
            {},
            h("div", { class: "eid", title: item.id }, shortId(item.id)),
            h(
              "div",
              { class: "when" },
              [relativeTime(item.started_at), item.created_by]
                .filter(Boolean)
                .join(" · "),
            ),
            item.trigger
              ? h(
                  "div",
                  {
                    class: "exec-trigger",
                    "data-trigger-type": item.trigger.type,
                  },
                  startedHow(item.trigger),
                )
              : null,
          ),
          h(
            "span",
            { class: "ver" },
            [
              item.version ? `v${item.version}` : "",
              duration(item.started_at, item.completed_at),
            ]
              .filter(Boolean)
              .join(" · "),
          ),
        ),
      );
    }
    if (this.cursor)
      this.listEl.append(
        h(
          "button",
          {
            type: "button",
            class: "btn small ghost",
            onClick: () => this.load(true),
          },
          "Load more",
        ),
      );
  }

  async open(executionId) {
    this.selected = { id: executionId, loading: true };
    this._renderList();
    this._renderDetail();
    /** @type {import("./run.js").StatusDoc|null} */
    let status = null;
    /** @type {EventRow[]} */
    let events = [];
    try {
      [status, events] = await Promise.all([
        api(
          "GET",
          `/api/v1/executions/${encodeURIComponent(executionId)}/status`,
        ).catch((err) => {
          if (err instanceof ApiError && err.status === 404) throw err;
          return null;
        }),
        api(
          "GET",
          `/api/v1/executions/${encodeURIComponent(executionId)}/events`,
        ),
      ]);
    } catch (err) {
      this.selected = { id: executionId, error: err.message };
      this._renderDetail();
      return;
    }
    if (this.selected?.id !== executionId) return;
    events = [...events].sort((a, b) => Number(a.seq) - Number(b.seq));
    const maxSeq = events.length ? Number(events[events.length - 1].seq) : 0;
    const run = status
      ? fromStatus(status)
      : foldEvents(events, Infinity, executionId);
    this.selected = {
      id: executionId,
      status,
      events,
      run,
      seq: maxSeq,
      maxSeq,
    };
    this._renderDetail();
    this.emit("show", run);
    this._probeStateApi(executionId, maxSeq);
  }

  _probeStateApi(executionId, seq) {
    return probeStateApi(this, executionId, seq);
  }

  close() {
    this.selected = null;
    this._renderList();
    this._renderDetail();
    this.emit("show", null);
  }

  get shownRun() {
    return this.selected?.run ?? null;
  }

  _renderDetail() {
    renderDetail(this);
  }

  _label() {
    renderLabel(this);
  }

  _renderTimeline() {
    renderTimeline(this);
  }

  /** Show the execution's state right after event `seq`. */
  stepTo(seq) {
    stepTo(this, seq);
  }
}
