// A field's label: its human name, whether it is required, its key and its
// description. Every control of the schema form shares it.

import { unwrapNullable } from "./schemakind.js";
import { h } from "./util.js";

export function humanize(name) {
  const words = name.replace(/_s$/, " (seconds)").replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function labelFor(name, schema, required, root) {
  const { node } = unwrapNullable(schema, root);
  return h(
    "div",
    { class: "field-label" },
    h("label", { class: "field-name" }, humanize(name)),
    required
      ? h("span", { class: "req", title: "required" }, "required")
      : null,
    h("code", { class: "field-key" }, name),
    node.description
      ? h("div", { class: "field-help" }, node.description)
      : null,
  );
}
