// Small form pieces of the inspector's Triggers section, shared by the
// webhook card (inspector-triggers.js) and the schedule fields
// (triggerschedule.js): a labelled field, a select, and the editor that
// keeps one card's trigger and writes each change into the process document.

import { cleanTrigger } from "./triggers.js";
import { h } from "./util.js";

let ids = 0;

/** A labelled field: `control` gets an id its label points at. */
export function triggerField(label, control, help) {
  const id = `trig-${++ids}`;
  control.id = id;
  return h(
    "div",
    { class: "field" },
    h(
      "div",
      { class: "field-label" },
      h("label", { class: "field-name", for: id }, label),
      help ? h("span", { class: "field-help" }, help) : null,
    ),
    control,
  );
}

/** A select of `values`, with `labels` shown for them when given. */
export function choice(values, current, onChange, labels = {}) {
  const select = h(
    "select",
    { onChange: () => onChange(select.value) },
    ...values.map((v) => h("option", { value: v }, labels[v] ?? v)),
  );
  select.value = current;
  return select;
}

/**
 * The trigger being edited in one card: `get()` is its current form,
 * `set(patch)` changes fields (undefined removes one) and tells the document;
 * a refusal shown on the trigger goes, as an element's does when edited.
 */
export function editor(
  /** @type {import("./inspector.js").Inspector} */ insp,
  /** @type {import("./triggers.js").Trigger} */ trigger,
) {
  let current = trigger;
  return {
    get: () => current,
    set(patch) {
      // cleanTrigger leaves out what is undefined: a patch to undefined removes it.
      const next = cleanTrigger({ ...current, ...patch });
      const before = current.key;
      current = next;
      insp.doc.setTrigger(before, next);
      if (insp.errors.delete(before))
        document
          .querySelectorAll(
            `.trigger-card .insp-error[data-error-for="${CSS.escape(before)}"]`,
          )
          .forEach((n) => n.remove());
    },
  };
}
