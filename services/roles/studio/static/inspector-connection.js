// The inspector for a selected connection: which port of which element it
// leaves, where it goes, and deleting it.

import { h } from "./util.js";

/** @typedef {import("./inspector.js").Inspector} Inspector */

/**
 * @param {Inspector} insp
 * @param {{source: string, target: string, source_port?: string}} connection
 * @param {number} index  its place in the thread's connections
 */
export function renderConnection(insp, connection, index) {
  const port = connection.source_port ?? "out";
  insp.root.append(
    h(
      "div",
      { class: "insp-head" },
      h(
        "div",
        {},
        h("div", { class: "insp-title" }, "Connection"),
        h(
          "div",
          { class: "insp-desc" },
          `${connection.source} → ${connection.target}`,
        ),
      ),
    ),
    h(
      "div",
      { class: "insp-section" },
      h(
        "dl",
        { class: "meta-grid" },
        h("dt", {}, "From"),
        h("dd", {}, connection.source),
        h("dt", {}, "Port"),
        h("dd", {}, port),
        h("dt", {}, "To"),
        h("dd", {}, connection.target),
      ),
    ),
    h(
      "div",
      { class: "insp-section" },
      h(
        "button",
        {
          type: "button",
          class: "btn danger small",
          onClick: () => insp.emit("delete", { kind: "edge", index }),
        },
        "Delete connection",
      ),
    ),
  );
}
