// The Run tab: the execution started from this page, as it goes — its summary
// (status, ids, timing, how updates arrive), its output once it completed, and
// its event log. The watching itself is run.js's; this only shows.

import { statePill } from "./icons.js";
import { eventRow } from "./eventlog.js";
import { elementOf, TERMINAL_STATUSES } from "./run.js";
import {
  clear,
  clockTime,
  duration,
  Emitter,
  h,
  pretty,
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
