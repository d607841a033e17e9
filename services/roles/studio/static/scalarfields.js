// The controls for a property of one plain JSON-schema type: strings (CEL,
// prose or a line), numbers and integers, booleans and enums. Each appends to
// the field's `wrap` and reports edits through `set`; schemaform.js picks one.

import { humanize, labelFor } from "./fieldlabel.js";
import { h } from "./util.js";

/**
 * What every control gets.
 *
 * @typedef {object} FieldContext
 * @property {string} kind         the kind schemakind.js gave the property
 * @property {string} name         the property's key
 * @property {object} schema       the property's schema as written
 * @property {object} node         the schema, dereferenced and without its null alternative
 * @property {object} root         the whole params schema, for `$ref`s
 * @property {*} value             the current value
 * @property {boolean} required
 * @property {(value: *) => void} set
 * @property {string} placeholder  the default or first example, if any
 */

/**
 * A CEL expression or prose (a prompt, a template): a textarea.
 *
 * @param {HTMLElement} wrap
 * @param {FieldContext} field
 */
export function textField(
  wrap,
  { kind, name, schema, root, value, required, set, placeholder },
) {
  wrap.append(labelFor(name, schema, required, root));
  const area = h("textarea", {
    class: kind === "cel" ? "mono code" : "",
    rows: kind === "cel" ? 3 : 5,
    spellcheck: "false",
    "data-param": name,
    placeholder:
      kind === "cel"
        ? placeholder || "CEL, e.g. input.amount > 100"
        : placeholder,
    value: value ?? "",
    onInput: (e) => set(e.target.value),
  });
  wrap.append(area);
  if (kind === "cel")
    wrap.append(
      h(
        "div",
        { class: "field-hint" },
        "CEL · input, execution.input, nodes.<key>.output",
      ),
    );
}

/**
 * Any other string: one line.
 *
 * @param {HTMLElement} wrap
 * @param {FieldContext} field
 */
export function stringField(
  wrap,
  { name, schema, root, value, required, set, placeholder },
) {
  wrap.append(labelFor(name, schema, required, root));
  const mono = /url|path|id$|_id|model/.test(name);
  wrap.append(
    h("input", {
      type: "text",
      class: mono ? "mono" : "",
      "data-param": name,
      spellcheck: "false",
      placeholder,
      value: value ?? "",
      onInput: (e) => set(e.target.value),
    }),
  );
}

/**
 * A number or an integer: a number input; empty leaves it out.
 *
 * @param {HTMLElement} wrap
 * @param {FieldContext} field
 */
export function numberField(
  wrap,
  { kind, name, schema, node, root, value, required, set, placeholder },
) {
  wrap.append(labelFor(name, schema, required, root));
  wrap.append(
    h("input", {
      type: "number",
      "data-param": name,
      step: kind === "integer" ? "1" : "any",
      min: node.minimum ?? node.exclusiveMinimum,
      max: node.maximum ?? node.exclusiveMaximum,
      placeholder,
      value: value ?? "",
      onInput: (e) => {
        const raw = e.target.value;
        if (raw === "") return set(undefined);
        const num = kind === "integer" ? Number.parseInt(raw, 10) : Number(raw);
        if (!Number.isNaN(num)) set(num);
      },
    }),
  );
}

/**
 * A boolean: a toggle.
 *
 * @param {HTMLElement} wrap
 * @param {FieldContext} field
 */
export function booleanField(wrap, { name, node, value, set }) {
  const input = h("input", {
    type: "checkbox",
    "data-param": name,
    checked: value ?? node.default ?? false,
    onChange: (e) => set(e.target.checked),
  });
  wrap.append(
    h(
      "label",
      { class: "toggle" },
      input,
      h("span", { class: "toggle-track" }),
      h("span", {}, humanize(name)),
    ),
  );
  if (node.description)
    wrap.append(h("div", { class: "field-help" }, node.description));
}

/**
 * A closed list of strings or numbers: a select.
 *
 * @param {HTMLElement} wrap
 * @param {FieldContext} field
 */
export function enumField(
  wrap,
  { name, schema, node, root, value, required, set },
) {
  wrap.append(labelFor(name, schema, required, root));
  const blank =
    node.default !== undefined && node.default !== null
      ? `default (${node.default})`
      : required
        ? "choose…"
        : "—";
  const select = h(
    "select",
    {
      "data-param": name,
      onChange: (e) =>
        set(
          e.target.value === ""
            ? undefined
            : coerceEnum(e.target.value, node.enum),
        ),
    },
    h("option", { value: "" }, blank),
    ...node.enum.map((opt) => h("option", { value: String(opt) }, String(opt))),
  );
  select.value = value === undefined || value === null ? "" : String(value);
  wrap.append(select);
}

function coerceEnum(raw, options) {
  const match = options.find((o) => String(o) === raw);
  return match === undefined ? raw : match;
}
