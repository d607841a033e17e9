// The inspector for one element: its key (renaming it renames it everywhere),
// its name, its parameters (inspector-params.js), for a thread's start the
// process's triggers (inspector-triggers.js), its run data
// (inspector-run.js), what it connects to, and deleting it.

import { typeColor, typeIcon } from "./icons.js";
import { paramsSection } from "./inspector-params.js";
import { fillRun } from "./inspector-run.js";
import { triggersSection } from "./inspector-triggers.js";
import { h } from "./util.js";

/** @typedef {import("./inspector.js").Inspector} Inspector */

/**
 * @param {Inspector} insp
 * @param {object} element  an element of the process document
 */
export function renderElement(insp, element) {
  const info = insp.catalog.get(element.type);
  const color = typeColor(element.type);
  const head = h(
    "div",
    { class: "insp-head" },
    h(
      "span",
      { class: "insp-icon", style: { "--type-color": color } },
      typeIcon(element.type, 20),
    ),
    h(
      "div",
      {},
      h(
        "div",
        { class: "insp-title", "data-testid": "inspector-title" },
        element.key,
      ),
      h(
        "div",
        { class: "insp-desc" },
        h("strong", {}, element.type),
        info.description ? ` — ${info.description}` : "",
      ),
    ),
  );
  head.querySelector(".insp-icon").style.setProperty("--type-color", color);
  insp.root.append(head);

  const error = insp.errors.get(element.key);
  const basics = h("div", { class: "insp-section" });
  if (error)
    basics.append(
      h(
        "div",
        { class: "insp-error", "data-error-for": element.key, role: "alert" },
        h("strong", {}, "Refused:"),
        h("span", {}, error),
      ),
    );
  const keyError = h("div", { class: "field-error" });
  const keyInput = h("input", {
    type: "text",
    class: "mono",
    id: "insp-key",
    "data-field": "key",
    value: element.key,
    spellcheck: "false",
    autocomplete: "off",
    onKeydown: (e) => {
      if (e.key === "Enter") e.target.blur();
      if (e.key === "Escape") {
        e.target.value = element.key;
        e.target.blur();
      }
    },
    onChange: (e) => {
      const next = e.target.value.trim();
      const problem = insp.doc.renameKey(element.key, next);
      if (problem) {
        keyInput.classList.add("invalid");
        keyError.textContent = problem;
      } else {
        keyInput.classList.remove("invalid");
        keyError.textContent = "";
        insp.emit("renamed", element.key, next);
      }
    },
  });
  basics.append(
    h(
      "div",
      { class: "field" },
      h(
        "div",
        { class: "field-label" },
        h("label", { class: "field-name", for: "insp-key" }, "Key"),
        h(
          "span",
          { class: "field-help" },
          "Unique in the process; names it in expressions as nodes.<key>.output.",
        ),
      ),
      keyInput,
      keyError,
    ),
    h(
      "div",
      { class: "field" },
      h(
        "div",
        { class: "field-label" },
        h("label", { class: "field-name", for: "insp-name" }, "Name"),
      ),
      h("input", {
        type: "text",
        id: "insp-name",
        "data-field": "name",
        placeholder: "Optional display name",
        value: element.name ?? "",
        onInput: (e) =>
          insp.doc.setElementName(element.key, e.target.value.trim()),
      }),
    ),
  );
  insp.root.append(basics);

  insp.root.append(paramsSection(insp, element, info));
  // A thread's start: the process's webhooks and schedules are edited here.
  if (element.type === "trigger") insp.root.append(triggersSection(insp));

  insp.runBox = h("div", { class: "insp-section", "data-section": "run" });
  insp.root.append(insp.runBox);
  fillRun(insp);

  const ports = insp.catalog.outPorts(element.type);
  const outgoing = insp.doc.thread.connections.filter(
    (c) => c.source === element.key,
  );
  const incoming = insp.doc.thread.connections.filter(
    (c) => c.target === element.key,
  );
  insp.root.append(
    h(
      "div",
      { class: "insp-section" },
      h("h3", {}, "Connections"),
      h(
        "dl",
        { class: "meta-grid" },
        h("dt", {}, "In"),
        h(
          "dd",
          {},
          incoming.length
            ? incoming
                .map(
                  (c) =>
                    `${c.source}${c.source_port ? `.${c.source_port}` : ""}`,
                )
                .join(", ")
            : "—",
        ),
        h("dt", {}, "Out"),
        h(
          "dd",
          {},
          outgoing.length
            ? outgoing
                .map((c) => `${c.source_port ?? "out"} → ${c.target}`)
                .join(", ")
            : "—",
        ),
        h("dt", {}, "Ports"),
        h("dd", {}, [...ports, "error"].join(", ")),
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
          "data-action": "delete-element",
          onClick: () =>
            insp.emit("delete", { kind: "node", key: element.key }),
        },
        "Delete element",
      ),
    ),
  );
}
