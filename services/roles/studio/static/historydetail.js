// What the History tab shows of an opened execution: its head (status, id,
// when, re-run from an element, close), the slider that steps through its
// events, and its timeline, the events with the one shown marked. Moving the
// slider is timetravel.js's; the list above is history.js's.

import { eventRow } from "./eventlog.js";
import { statePill } from "./icons.js";
import { elementOf } from "./run.js";
import { clear, duration, h, shortId } from "./util.js";

/** @typedef {import("./history.js").HistoryPanel} HistoryPanel */

/** @param {HistoryPanel} panel */
export function renderDetail(panel) {
  clear(panel.detailEl);
  const sel = panel.selected;
  if (!sel) {
    panel.detailEl.append(
      h(
        "div",
        { class: "empty-note" },
        "Open an execution to see its timeline and step through it.",
      ),
    );
    return;
  }
  if (sel.loading) {
    panel.detailEl.append(h("div", { class: "empty-note" }, "Loading…"));
    return;
  }
  if (sel.error) {
    panel.detailEl.append(
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
  if (panel.selectedKey && keys.includes(panel.selectedKey))
    select.value = panel.selectedKey;
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
          panel.emit("rerun", { executionId: sel.id, key: select.value }),
      },
      "↻ Re-run from here",
    ),
  );
  panel.detailEl.append(
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
          onClick: () => panel.close(),
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
      onInput: (e) => panel.stepTo(Number(e.target.value)),
    });
    panel.sliderLabel = label;
    panel.slider = slider;
    panel.detailEl.append(
      h(
        "div",
        { class: "slider-row" },
        h(
          "button",
          {
            type: "button",
            class: "icon-btn",
            title: "Previous event",
            onClick: () => panel.stepTo(Math.max(0, sel.seq - 1)),
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
            onClick: () => panel.stepTo(Math.min(sel.maxSeq, sel.seq + 1)),
          },
          "›",
        ),
        label,
      ),
    );
    renderLabel(panel);
  }
  panel.timelineEl = h("div", { class: "timeline" });
  panel.detailEl.append(panel.timelineEl);
  renderTimeline(panel);
}

/** @param {HistoryPanel} panel */
export function renderLabel(panel) {
  const sel = panel.selected;
  if (!panel.sliderLabel || !sel) return;
  const event = sel.events.find((e) => Number(e.seq) === sel.seq);
  const source = panel.stateApi ? "state?at" : "events";
  panel.sliderLabel.textContent =
    sel.seq === 0
      ? `before #1 · ${source}`
      : `#${sel.seq}/${sel.maxSeq} ${event ? `· ${event.type}` : ""}`;
  panel.sliderLabel.title = `State from ${source}`;
}

/** @param {HistoryPanel} panel */
export function renderTimeline(panel) {
  const sel = panel.selected;
  if (!panel.timelineEl || !sel) return;
  clear(panel.timelineEl);
  for (const event of sel.events) {
    const seq = Number(event.seq);
    panel.timelineEl.append(
      eventRow(event, {
        current: seq === sel.seq && sel.seq !== sel.maxSeq,
        future: seq > sel.seq,
        onClick: (e) => {
          panel.stepTo(Number(e.seq));
          const key = elementOf(e);
          if (key) panel.emit("focus", key);
        },
      }),
    );
  }
}
