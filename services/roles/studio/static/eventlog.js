// One event as a row. The Run tab's event log and a History timeline list an
// execution's events the same way, so the row and its one-line summary live
// here, apart from either panel.

import { elementOf } from "./run.js";
import { clockTime, h, oneLine } from "./util.js";

/** @typedef {import("./run.js").EventMessage} EventMessage */

/** What the row says of an event's data, on one line. */
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

/**
 * @param {EventMessage & {actor?: string}} event
 * @param {{onClick?: (event: EventMessage) => void, current?: boolean, future?: boolean}} [options]
 */
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
