// A form generated from an element type's params JSON Schema: one field per
// property, in the schema's order, with params it does not describe kept in a
// JSON field so nothing is lost.
//
// Which control a property gets is schemakind.js's; the controls are
// scalarfields.js (strings, CEL, prose, numbers, booleans, enums), mapfield.js
// (maps of strings) and jsonfield.js (anything else). Objects with properties
// are groups, built here since they hold fields in turn.

import { labelFor, humanize } from "./fieldlabel.js";
import { jsonField } from "./jsonfield.js";
import { mapEditor } from "./mapfield.js";
import {
  booleanField,
  enumField,
  numberField,
  stringField,
  textField,
} from "./scalarfields.js";
import { kindOf, unwrapNullable } from "./schemakind.js";
import { h } from "./util.js";

function isEmpty(value) {
  return value === undefined || value === null || value === "";
}

/**
 * Build the form. `value` is the current params object; `onChange(params)` is
 * called with a fresh params object (empty fields left out) on every edit.
 * `options.celMaps` names map fields whose values are CEL (transform `output`).
 */
export function schemaForm(schema, value, onChange, options = {}) {
  const root = schema || {};
  const top = unwrapNullable(root, root).node;
  const params = structuredClone(value || {});
  const container = h("div", { class: "schema-form" });
  const properties = top.properties ?? {};
  const names = Object.keys(properties);
  const emit = () => onChange(structuredClone(params));

  if (!names.length) {
    if (top.type === "object" && top.additionalProperties === false) {
      container.append(
        h("p", { class: "muted small" }, "This element has no parameters."),
      );
      return container;
    }
    container.append(
      jsonField("params", params, (v) => {
        for (const k of Object.keys(params)) delete params[k];
        Object.assign(params, v ?? {});
        emit();
      }),
    );
    return container;
  }
  const required = new Set(top.required ?? []);
  for (const name of names) {
    container.append(
      field(
        name,
        properties[name],
        root,
        params[name],
        required.has(name),
        (v) => {
          if (
            isEmpty(v) ||
            (typeof v === "object" &&
              !Array.isArray(v) &&
              v &&
              !Object.keys(v).length &&
              !required.has(name))
          ) {
            delete params[name];
          } else params[name] = v;
          emit();
        },
        { ...options, depth: 0 },
      ),
    );
  }
  // Params the schema does not describe are kept and shown, so nothing is lost.
  const unknown = Object.keys(params).filter((k) => !(k in properties));
  if (unknown.length) {
    const extra = Object.fromEntries(unknown.map((k) => [k, params[k]]));
    container.append(
      jsonField(
        "other params",
        extra,
        (v) => {
          for (const k of unknown) delete params[k];
          Object.assign(params, v ?? {});
          emit();
        },
        "Not in this type's schema",
      ),
    );
  }
  return container;
}

function field(name, schema, root, value, required, set, options) {
  const kind = kindOf(name, schema, root, options);
  const { node } = unwrapNullable(schema, root);
  const wrap = h("div", { class: `field field-${kind}`, "data-field": name });
  const placeholder =
    node.default !== undefined && node.default !== null
      ? String(node.default)
      : (node.examples?.[0] ?? "");
  const ctx = {
    kind,
    name,
    schema,
    node,
    root,
    value,
    required,
    set,
    placeholder,
  };
  switch (kind) {
    case "cel":
    case "text":
      textField(wrap, ctx);
      break;
    case "string":
      stringField(wrap, ctx);
      break;
    case "number":
    case "integer":
      numberField(wrap, ctx);
      break;
    case "boolean":
      booleanField(wrap, ctx);
      break;
    case "enum":
      enumField(wrap, ctx);
      break;
    case "map":
      wrap.append(labelFor(name, schema, required, root));
      wrap.append(mapEditor(name, value, set, options.celMaps?.includes(name)));
      break;
    case "group": {
      const inner =
        value && typeof value === "object" ? structuredClone(value) : {};
      const details = h("details", {
        class: "field-group",
        open: value ? true : undefined,
      });
      details.append(
        h(
          "summary",
          {},
          h("span", {}, humanize(name)),
          h("code", { class: "field-key" }, name),
          value ? null : h("span", { class: "muted small" }, "not set"),
        ),
      );
      const props = node.properties ?? {};
      for (const sub of Object.keys(props)) {
        details.append(
          field(
            sub,
            props[sub],
            root,
            inner[sub],
            false,
            (v) => {
              if (isEmpty(v)) delete inner[sub];
              else inner[sub] = v;
              set(
                Object.keys(inner).length ? structuredClone(inner) : undefined,
              );
            },
            { ...options, depth: (options.depth ?? 0) + 1 },
          ),
        );
      }
      wrap.append(details);
      break;
    }
    default:
      return jsonField(name, value, set, node.description, required);
  }
  return wrap;
}
