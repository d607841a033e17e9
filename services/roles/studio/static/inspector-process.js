// The inspector when nothing is selected: the process itself — its project,
// app and name (editable), its id, version and audit, refusals that name no
// element, and the editor's keys.

import { h } from "./util.js";

/** @typedef {import("./inspector.js").Inspector} Inspector */

/** @param {Inspector} insp */
export function renderProcess(insp) {
  const doc = insp.doc;
  const section = h("div", { class: "insp-section" });
  const field = (label, prop) =>
    h(
      "div",
      { class: "field" },
      h(
        "div",
        { class: "field-label" },
        h("label", { class: "field-name" }, label),
      ),
      h("input", {
        type: "text",
        "data-field": `process-${prop}`,
        value: doc[prop] ?? "",
        onInput: (e) => {
          doc[prop] = e.target.value;
          doc.markDirty();
          insp.emit("meta");
        },
      }),
    );
  section.append(
    field("Project", "project"),
    field("App", "app"),
    field("Process name", "name"),
  );
  const audit = doc.audit || {};
  const info = h(
    "dl",
    { class: "meta-grid" },
    h("dt", {}, "Process id"),
    h("dd", { class: "mono" }, doc.id ?? "not saved yet"),
    h("dt", {}, "Version"),
    h(
      "dd",
      {},
      doc.version
        ? `v${doc.version}${doc.latest && doc.latest !== doc.version ? ` (latest v${doc.latest})` : ""}`
        : "—",
    ),
    h("dt", {}, "Elements"),
    h("dd", {}, String(doc.allElements().length)),
    audit.created_at
      ? [
          h("dt", {}, "Created"),
          h(
            "dd",
            {},
            `${new Date(audit.created_at).toLocaleString()} · ${audit.created_by ?? ""}`,
          ),
        ]
      : null,
    audit.modified_at
      ? [
          h("dt", {}, "Modified"),
          h(
            "dd",
            {},
            `${new Date(audit.modified_at).toLocaleString()} · ${audit.modified_by ?? ""}`,
          ),
        ]
      : null,
  );
  const processErrors = [...insp.errors.entries()].filter(
    ([k]) => !doc.element(k),
  );
  const parts = [
    h(
      "div",
      { class: "insp-head" },
      h(
        "div",
        {},
        h("div", { class: "insp-title" }, doc.name || "Untitled process"),
        h(
          "div",
          { class: "insp-desc" },
          "Process settings — select an element to edit it",
        ),
      ),
    ),
    processErrors.length
      ? h(
          "div",
          { class: "insp-section" },
          ...processErrors.map(([, message]) =>
            h(
              "div",
              { class: "insp-error", role: "alert" },
              h("strong", {}, "Refused:"),
              h("span", {}, message),
            ),
          ),
        )
      : null,
    section,
    h("div", { class: "insp-section" }, h("h3", {}, "About"), info),
    h(
      "div",
      { class: "insp-section" },
      h("h3", {}, "Keys"),
      h(
        "ul",
        { class: "kbd-list" },
        h(
          "li",
          {},
          h("kbd", {}, "Delete"),
          " / ",
          h("kbd", {}, "⌫"),
          " remove the selection",
        ),
        h("li", {}, h("kbd", {}, "Ctrl"), " + ", h("kbd", {}, "S"), " save"),
        h("li", {}, h("kbd", {}, "Ctrl"), " + ", h("kbd", {}, "Enter"), " run"),
        h(
          "li",
          {},
          "Wheel zooms, dragging the background pans, double-click fits",
        ),
        h(
          "li",
          {},
          "Drag from a port (right edge, or the red ",
          h("em", {}, "error"),
          " dot) onto an element to connect",
        ),
      ),
    ),
  ];
  insp.root.append(...parts.filter(Boolean));
}
