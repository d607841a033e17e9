// The right panel: the selected element's key, name and params (a form from
// its type's JSON Schema), its run data when an execution is shown, or the
// process itself when nothing is selected.

import { statePill, typeColor, typeIcon } from "./icons.js";
import { jsonField } from "./jsonfield.js";
import { schemaForm } from "./schemaform.js";
import { clear, clockTime, duration, Emitter, h, pretty } from "./util.js";

const CEL_MAPS = { transform: ["output"] };

export class Inspector extends Emitter {
  constructor(root) {
    super();
    this.root = root;
    this.doc = null;
    this.catalog = null;
    this.selection = null;
    this.run = null;
    this.runLabel = "";
    this.errors = new Map();
    this.rawMode = false;
    this.runBox = null;
  }

  setContext({ doc, catalog }) {
    this.doc = doc;
    this.catalog = catalog;
    this.selection = null;
    this.render();
  }

  select(selection) {
    const changed =
      JSON.stringify(selection) !== JSON.stringify(this.selection);
    this.selection = selection;
    if (changed) this.rawMode = false;
    this.render();
  }

  setErrors(errors) {
    this.errors = new Map(errors);
    this.render();
  }

  /** Update only the run part, so typing in a field is never interrupted. */
  setRun(run, label = "") {
    this.run = run;
    this.runLabel = label;
    if (this.runBox && this.runBox.isConnected) this._fillRun();
    else this.render();
  }

  render() {
    clear(this.root);
    this.runBox = null;
    if (!this.doc) {
      this.root.append(
        h(
          "div",
          { class: "insp-empty" },
          h("h2", {}, "Inspector"),
          h("p", {}, "Open a process or create a new one to start designing."),
        ),
      );
      return;
    }
    const sel = this.selection;
    if (sel?.kind === "node" && this.doc.element(sel.key))
      this._renderElement(this.doc.element(sel.key));
    else if (sel?.kind === "edge" && this.doc.thread.connections[sel.index])
      this._renderEdge(this.doc.thread.connections[sel.index], sel.index);
    else this._renderProcess();
  }

  _renderElement(element) {
    const info = this.catalog.get(element.type);
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
    this.root.append(head);

    const error = this.errors.get(element.key);
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
        const problem = this.doc.renameKey(element.key, next);
        if (problem) {
          keyInput.classList.add("invalid");
          keyError.textContent = problem;
        } else {
          keyInput.classList.remove("invalid");
          keyError.textContent = "";
          this.emit("renamed", element.key, next);
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
            this.doc.setElementName(element.key, e.target.value.trim()),
        }),
      ),
    );
    this.root.append(basics);

    const paramsSection = h("div", {
      class: "insp-section",
      "data-section": "params",
    });
    const toggle = h(
      "button",
      {
        type: "button",
        class: "btn small ghost",
        onClick: () => {
          this.rawMode = !this.rawMode;
          this.render();
        },
      },
      this.rawMode ? "Form" : "{ } JSON",
    );
    paramsSection.append(h("h3", {}, h("span", {}, "Parameters"), toggle));
    const onParams = (params) => this.doc.setParams(element.key, params);
    if (this.rawMode)
      paramsSection.append(
        jsonField(
          "params",
          element.params ?? {},
          (v) => onParams(v ?? {}),
          "The element's params as JSON",
        ),
      );
    else
      paramsSection.append(
        schemaForm(info.schema, element.params ?? {}, onParams, {
          celMaps: CEL_MAPS[element.type] ?? [],
        }),
      );
    if (info.sideEffects)
      paramsSection.append(
        h(
          "div",
          { class: "field-hint" },
          "Has side effects: takes retry and timeout_s; every attempt is recorded.",
        ),
      );
    this.root.append(paramsSection);

    this.runBox = h("div", { class: "insp-section", "data-section": "run" });
    this.root.append(this.runBox);
    this._fillRun();

    const ports = this.catalog.outPorts(element.type);
    const outgoing = this.doc.thread.connections.filter(
      (c) => c.source === element.key,
    );
    const incoming = this.doc.thread.connections.filter(
      (c) => c.target === element.key,
    );
    this.root.append(
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
              this.emit("delete", { kind: "node", key: element.key }),
          },
          "Delete element",
        ),
      ),
    );
  }

  _fillRun() {
    const box = this.runBox;
    if (!box) return;
    clear(box);
    const key = this.selection?.key;
    box.append(
      h(
        "h3",
        {},
        h("span", {}, this.runLabel ? `Run · ${this.runLabel}` : "Run"),
      ),
    );
    if (!this.run) {
      box.append(
        h(
          "div",
          { class: "muted small" },
          "Run the process, or open an execution in History, to see this element’s input, output and error.",
        ),
      );
      return;
    }
    const node = this.run.nodes?.[key] ?? { state: "pending" };
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
        node.port && node.port !== "out"
          ? h("span", {}, `→ ${node.port}`)
          : null,
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
      this.run.execution_id &&
      key &&
      ["completed", "failed", "cancelled"].includes(this.run.status)
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
              onClick: () => this.emit("rerun", key),
            },
            `↻ Re-run from ${key}`,
          ),
        ),
      );
    }
    box.append(card);
  }

  _renderEdge(connection, index) {
    const port = connection.source_port ?? "out";
    this.root.append(
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
            onClick: () => this.emit("delete", { kind: "edge", index }),
          },
          "Delete connection",
        ),
      ),
    );
  }

  _renderProcess() {
    const doc = this.doc;
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
            this.emit("meta");
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
    const processErrors = [...this.errors.entries()].filter(
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
          h(
            "li",
            {},
            h("kbd", {}, "Ctrl"),
            " + ",
            h("kbd", {}, "Enter"),
            " run",
          ),
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
    this.root.append(...parts.filter(Boolean));
  }
}
