// The bottom panel: the live run (summary + event stream) and the history of
// executions (list, timeline, time-travel slider, re-run).

import { api, ApiError, listOf } from "./api.js";
import { statePill } from "./icons.js";
import { elementOf, foldEvents, fromStatus, TERMINAL_STATUSES } from "./run.js";
import {
  clear,
  clockTime,
  duration,
  Emitter,
  h,
  oneLine,
  pretty,
  relativeTime,
  shortId,
} from "./util.js";

const MODE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  polling: "Polling",
  done: "Finished",
  error: "Unavailable",
  idle: "",
};

export function modeText(mode) {
  return MODE_TEXT[mode] ?? mode;
}

function summaryOf(event) {
  const data =
    event.data && typeof event.data === "object"
      ? { ...event.data }
      : event.data;
  if (data && typeof data === "object") {
    delete data.element;
    if (event.type === "NodeCompleted" && "output" in data)
      return oneLine(data.output, 120);
    if (
      (event.type === "NodeFailed" || event.type === "ExecutionFailed") &&
      data.error
    )
      return oneLine(data.error, 140);
    if (event.type === "ExecutionStarted" && "input" in data)
      return `input ${oneLine(data.input, 110)}`;
    if (event.type === "NodeExecuting")
      return data.attempt && data.attempt > 1 ? `attempt ${data.attempt}` : "";
    if (event.type === "ExecutionCompleted" && "output" in data)
      return oneLine(data.output, 120);
    return Object.keys(data).length ? oneLine(data, 120) : "";
  }
  return data === undefined || data === null ? "" : oneLine(data, 120);
}

export function eventRow(event, { onClick, current, future } = {}) {
  return h(
    "button",
    {
      type: "button",
      class: `ev-row ${current ? "current" : ""} ${future ? "future" : ""}`,
      "data-seq": event.seq,
      "data-type": event.type,
      onClick: onClick ? () => onClick(event) : undefined,
    },
    h("span", { class: "seq" }, `#${event.seq ?? "?"}`),
    h("span", { class: "at" }, clockTime(event.at)),
    h("span", { class: `etype t-${event.type}` }, event.type),
    h("span", { class: "el" }, elementOf(event) ?? ""),
    h(
      "span",
      { class: "data", title: event.actor ? `actor: ${event.actor}` : "" },
      summaryOf(event),
    ),
  );
}

function summary(run, { mode, extra } = {}) {
  const rows = h(
    "div",
    { class: "summary-row" },
    statePill(run.status),
    h(
      "div",
      { class: "kv" },
      h("span", { class: "k" }, "Execution"),
      h(
        "span",
        {
          class: "v mono",
          "data-execution-id": run.execution_id,
          title: run.execution_id ?? "",
        },
        shortId(run.execution_id),
      ),
    ),
    run.version
      ? h(
          "div",
          { class: "kv" },
          h("span", { class: "k" }, "Version"),
          h("span", { class: "v" }, `v${run.version}`),
        )
      : null,
    run.started_at
      ? h(
          "div",
          { class: "kv" },
          h("span", { class: "k" }, "Started"),
          h("span", { class: "v" }, clockTime(run.started_at)),
        )
      : null,
    run.started_at && run.completed_at
      ? h(
          "div",
          { class: "kv" },
          h("span", { class: "k" }, "Took"),
          h("span", { class: "v" }, duration(run.started_at, run.completed_at)),
        )
      : null,
    h(
      "div",
      { class: "kv" },
      h("span", { class: "k" }, "Position"),
      h("span", { class: "v" }, String(run.position ?? 0)),
    ),
    mode
      ? h(
          "div",
          { class: "kv" },
          h("span", { class: "k" }, "Updates"),
          h("span", { class: "v", "data-mode": mode }, modeText(mode)),
        )
      : null,
    run.rerun_of
      ? h(
          "div",
          { class: "kv" },
          h("span", { class: "k" }, "Re-run of"),
          h("span", { class: "v mono" }, shortId(run.rerun_of)),
        )
      : null,
    extra ?? null,
  );
  const box = h("div", {}, rows);
  if (run.error)
    box.append(
      h(
        "div",
        { class: "summary-error", role: "alert" },
        typeof run.error === "string" ? run.error : pretty(run.error),
      ),
    );
  return box;
}

/** The Run tab: the execution started from this page, live. */
export class RunPanel extends Emitter {
  constructor() {
    super();
    this.summaryEl = document.getElementById("run-summary");
    this.logEl = document.getElementById("event-log");
    this.resultEl = document.getElementById("run-result");
    this.cancelBtn = document.getElementById("btn-cancel");
    this.cancelBtn.addEventListener("click", () => this.emit("cancel"));
    this.events = [];
    this.run = null;
    this.mode = "idle";
  }

  reset(message = "Run the process to watch each element here.") {
    this.events = [];
    this.run = null;
    clear(this.summaryEl).append(h("div", { class: "empty-note" }, message));
    clear(this.logEl);
    clear(this.resultEl);
    this.resultEl.hidden = true;
    this.cancelBtn.hidden = true;
  }

  update(run, mode = this.mode) {
    this.run = run;
    this.mode = mode;
    clear(this.summaryEl).append(summary(run, { mode }));
    this.cancelBtn.hidden = TERMINAL_STATUSES.has(run.status);
    const hasOutput =
      run.status === "completed" &&
      run.output !== null &&
      run.output !== undefined;
    this.resultEl.hidden = !hasOutput;
    if (hasOutput) {
      clear(this.resultEl).append(
        h("div", { class: "json-label" }, "Output"),
        h(
          "pre",
          { class: "json-view", "data-execution-output": "" },
          pretty(run.output),
        ),
      );
    }
  }

  addEvent(event) {
    if (this.events.some((e) => e.seq === event.seq)) return;
    this.events.push(event);
    const atBottom =
      this.logEl.scrollTop + this.logEl.clientHeight >=
      this.logEl.scrollHeight - 8;
    this.logEl.append(
      eventRow(event, { onClick: (e) => this.emit("focus", elementOf(e)) }),
    );
    if (atBottom) this.logEl.scrollTop = this.logEl.scrollHeight;
  }

  setEvents(events) {
    const bySeq = new Map(
      [...this.events, ...events].map((e) => [Number(e.seq), e]),
    );
    this.events = [...bySeq.values()].sort(
      (a, b) => Number(a.seq) - Number(b.seq),
    );
    events = this.events;
    clear(this.logEl);
    for (const event of events)
      this.logEl.append(
        eventRow(event, { onClick: (e) => this.emit("focus", elementOf(e)) }),
      );
    this.logEl.scrollTop = this.logEl.scrollHeight;
  }
}

function normalizeExecution(raw) {
  return {
    id: raw.execution_id ?? raw.id,
    status: raw.status ?? "pending",
    version: raw.version ?? null,
    started_at: raw.started_at ?? raw.created_at ?? raw.at ?? null,
    completed_at: raw.completed_at ?? raw.finished_at ?? null,
    created_by: raw.started_by ?? raw.created_by ?? raw.actor ?? null,
    rerun_of: raw.rerun_of ?? null,
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
    this.selected = null; // {id, status, events, run, seq, maxSeq, stateApi}
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
      const body = await api("GET", `/api/v1/executions?${params}`);
      if (ticket !== this.loadSeq) return;
      const page = listOf(body, "executions").map(normalizeExecution);
      this.items = more ? [...this.items, ...page] : page;
      this.cursor =
        body && !Array.isArray(body)
          ? (body.next_cursor ?? body.cursor ?? null)
          : null;
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
    let status = null;
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
        ).then((b) => listOf(b, "events")),
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
      ? fromStatus(status, executionId)
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

  async _probeStateApi(executionId, seq) {
    if (this.stateApi !== undefined || !seq) return;
    try {
      await api(
        "GET",
        `/api/v1/executions/${encodeURIComponent(executionId)}/state?at=${seq}`,
      );
      this.stateApi = true;
    } catch {
      this.stateApi = false;
    }
    if (this.selected?.id === executionId) this._renderDetail();
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
    clear(this.detailEl);
    const sel = this.selected;
    if (!sel) {
      this.detailEl.append(
        h(
          "div",
          { class: "empty-note" },
          "Open an execution to see its timeline and step through it.",
        ),
      );
      return;
    }
    if (sel.loading) {
      this.detailEl.append(h("div", { class: "empty-note" }, "Loading…"));
      return;
    }
    if (sel.error) {
      this.detailEl.append(
        h(
          "div",
          { class: "empty-note" },
          `Could not open ${shortId(sel.id)}: ${sel.error}`,
        ),
      );
      return;
    }
    const keys = [...new Set(sel.events.map(elementOf).filter(Boolean))];
    const select = h(
      "select",
      { "data-rerun-key": "", "aria-label": "Element to re-run from" },
      ...keys.map((k) => h("option", { value: k }, k)),
    );
    if (this.selectedKey && keys.includes(this.selectedKey))
      select.value = this.selectedKey;
    const rerun = h(
      "div",
      { class: "rerun-box" },
      select,
      h(
        "button",
        {
          type: "button",
          class: "btn small soft",
          "data-action": "rerun",
          disabled: !keys.length || undefined,
          onClick: () =>
            this.emit("rerun", { executionId: sel.id, key: select.value }),
        },
        "↻ Re-run from here",
      ),
    );
    this.detailEl.append(
      h(
        "div",
        { class: "history-head" },
        statePill(sel.run.status),
        h("span", { class: "title", title: sel.id }, sel.id),
        sel.run.version
          ? h("span", { class: "muted small" }, `v${sel.run.version}`)
          : null,
        sel.run.started_at
          ? h(
              "span",
              { class: "muted small" },
              `${new Date(sel.run.started_at).toLocaleString()} · ${duration(sel.run.started_at, sel.run.completed_at)}`,
            )
          : null,
        h("span", { class: "grow" }),
        rerun,
        h(
          "button",
          {
            type: "button",
            class: "btn small ghost",
            onClick: () => this.close(),
            title: "Back to the design view",
          },
          "Close",
        ),
      ),
    );
    if (sel.maxSeq > 0) {
      const label = h("span", { class: "slider-label" });
      const slider = h("input", {
        type: "range",
        min: "0",
        max: String(sel.maxSeq),
        step: "1",
        value: String(sel.seq),
        "aria-label": "Step through the execution",
        "data-testid": "time-slider",
        onInput: (e) => this.stepTo(Number(e.target.value)),
      });
      this.sliderLabel = label;
      this.slider = slider;
      this.detailEl.append(
        h(
          "div",
          { class: "slider-row" },
          h(
            "button",
            {
              type: "button",
              class: "icon-btn",
              title: "Previous event",
              onClick: () => this.stepTo(Math.max(0, sel.seq - 1)),
            },
            "‹",
          ),
          slider,
          h(
            "button",
            {
              type: "button",
              class: "icon-btn",
              title: "Next event",
              onClick: () => this.stepTo(Math.min(sel.maxSeq, sel.seq + 1)),
            },
            "›",
          ),
          label,
        ),
      );
      this._label();
    }
    this.timelineEl = h("div", { class: "timeline" });
    this.detailEl.append(this.timelineEl);
    this._renderTimeline();
  }

  _label() {
    const sel = this.selected;
    if (!this.sliderLabel || !sel) return;
    const event = sel.events.find((e) => Number(e.seq) === sel.seq);
    const source = this.stateApi ? "state?at" : "events";
    this.sliderLabel.textContent =
      sel.seq === 0
        ? `before #1 · ${source}`
        : `#${sel.seq}/${sel.maxSeq} ${event ? `· ${event.type}` : ""}`;
    this.sliderLabel.title = `State from ${source}`;
  }

  _renderTimeline() {
    const sel = this.selected;
    if (!this.timelineEl || !sel) return;
    clear(this.timelineEl);
    for (const event of sel.events) {
      const seq = Number(event.seq);
      this.timelineEl.append(
        eventRow(event, {
          current: seq === sel.seq && sel.seq !== sel.maxSeq,
          future: seq > sel.seq,
          onClick: (e) => {
            this.stepTo(Number(e.seq));
            const key = elementOf(e);
            if (key) this.emit("focus", key);
          },
        }),
      );
    }
  }

  /** Show the execution's state right after event `seq`. */
  stepTo(seq) {
    const sel = this.selected;
    if (!sel?.events) return;
    sel.seq = seq;
    if (this.slider && Number(this.slider.value) !== seq)
      this.slider.value = String(seq);
    this._label();
    this._renderTimeline();
    const local =
      seq >= sel.maxSeq && sel.status
        ? fromStatus(sel.status, sel.id)
        : foldEvents(sel.events, seq, sel.id);
    sel.run = local;
    this.emit("show", local);
    if (this.stateApi && seq > 0 && seq < sel.maxSeq) {
      clearTimeout(this.stateTimer);
      this.stateTimer = setTimeout(async () => {
        try {
          const body = await api(
            "GET",
            `/api/v1/executions/${encodeURIComponent(sel.id)}/state?at=${seq}`,
          );
          if (this.selected !== sel || sel.seq !== seq) return;
          const doc = body?.status ?? body?.state ?? body;
          if (doc && typeof doc === "object" && (doc.nodes || doc.elements)) {
            const remote = fromStatus({ position: seq, ...doc }, sel.id);
            // Keep what only events tell (port taken), take the server's node states.
            for (const [key, node] of Object.entries(remote.nodes))
              if (local.nodes[key]?.port && !node.port)
                node.port = local.nodes[key].port;
            sel.run = remote;
            this.emit("show", remote);
          }
        } catch {
          /* the local fold stays */
        }
      }, 120);
    }
  }
}
