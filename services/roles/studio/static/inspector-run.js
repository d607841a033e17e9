// The run part of the element inspector: the element's state, attempts, timing,
// error, input and output in the execution shown (live or from History), and
// re-running from it once that execution ended. Refilled on every update
// without touching the fields above it.

import { statePill } from "./icons.js";
import { signalForm } from "./signalform.js";
import { clear, clockTime, duration, h, pretty } from "./util.js";

/** @typedef {import("./inspector.js").Inspector} Inspector */

/**
 * Fill the element's run box from `insp.run`.
 *
 * @param {Inspector} insp
 */
export function fillRun(insp) {
  const box = insp.runBox;
  if (!box) return;
  clear(box);
  const key = insp.selection?.key;
  box.append(
    h(
      "h3",
      {},
      h("span", {}, insp.runLabel ? `Run · ${insp.runLabel}` : "Run"),
    ),
  );
  if (!insp.run) {
    box.append(
      h(
        "div",
        { class: "muted small" },
        "Run the process, or open an execution in History, to see this element’s input, output and error.",
      ),
    );
    return;
  }
  const node = insp.run.nodes?.[key] ?? { state: "pending" };
  const card = h("div", { class: "run-card", "data-run-for": key });
  card.append(
    h(
      "div",
      { class: "row" },
      statePill(node.state),
      node.attempts ? h("span", {}, `attempt ${node.attempts}`) : null,
      node.started_at ? h("span", {}, clockTime(node.started_at)) : null,
      node.started_at && node.completed_at
        ? h("span", {}, duration(node.started_at, node.completed_at))
        : null,
      node.port && node.port !== "out" ? h("span", {}, `→ ${node.port}`) : null,
    ),
  );
  if (node.error)
    card.append(
      h(
        "div",
        {},
        h("div", { class: "json-label" }, "Error"),
        h(
          "pre",
          { class: "json-view error", "data-node-error": key },
          typeof node.error === "string" ? node.error : pretty(node.error),
        ),
      ),
    );
  if (
    node.state === "waiting" &&
    insp.run.execution_id &&
    insp.run.status === "running"
  )
    card.append(
      signalForm(insp.run.execution_id, key, insp.doc?.element(key)?.params),
    );
  if (node.input !== undefined && node.input !== null)
    card.append(
      h(
        "div",
        {},
        h("div", { class: "json-label" }, "Input"),
        h("pre", { class: "json-view" }, pretty(node.input)),
      ),
    );
  if (node.output !== undefined && node.output !== null)
    card.append(
      h(
        "div",
        {},
        h("div", { class: "json-label" }, "Output"),
        h(
          "pre",
          { class: "json-view", "data-node-output": key },
          pretty(node.output),
        ),
      ),
    );
  else if (node.state === "completed")
    card.append(h("div", { class: "muted small" }, "Output: null"));
  if (
    insp.run.execution_id &&
    key &&
    ["completed", "failed", "cancelled"].includes(insp.run.status)
  ) {
    card.append(
      h(
        "div",
        {},
        h(
          "button",
          {
            type: "button",
            class: "btn small soft",
            "data-action": "rerun-from",
            onClick: () => insp.emit("rerun", key),
          },
          `↻ Re-run from ${key}`,
        ),
      ),
    );
  }
  box.append(card);
}
