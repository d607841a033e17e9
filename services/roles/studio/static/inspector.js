// The right panel: the selected element's key, name and params (a form from
// its type's JSON Schema), its run data when an execution is shown, or the
// process itself when nothing is selected.
//
// This holds what the inspector knows and picks the view; the views are
// inspector-element.js (with inspector-params.js and inspector-run.js),
// inspector-connection.js and inspector-process.js.

import { renderConnection } from "./inspector-connection.js";
import { renderElement } from "./inspector-element.js";
import { renderProcess } from "./inspector-process.js";
import { fillRun } from "./inspector-run.js";
import { clear, Emitter, h } from "./util.js";

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
    if (this.runBox && this.runBox.isConnected) fillRun(this);
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
      renderElement(this, this.doc.element(sel.key));
    else if (sel?.kind === "edge" && this.doc.thread.connections[sel.index])
      renderConnection(this, this.doc.thread.connections[sel.index], sel.index);
    else renderProcess(this);
  }
}
