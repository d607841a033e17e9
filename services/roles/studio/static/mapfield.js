// The editor of a map of strings (an object whose additionalProperties are
// strings): rows of key and value, the values CEL for the fields that say so
// (transform's `output`).

import { h } from "./util.js";

export function mapEditor(name, value, set, cel) {
  const rows = Object.entries(value && typeof value === "object" ? value : {});
  const box = h("div", { class: "map-editor", "data-param": name });
  const list = h("div", { class: "map-rows" });
  const collect = () => {
    const out = {};
    for (const row of list.querySelectorAll(".map-row")) {
      const k = row.querySelector(".map-key").value.trim();
      const v = row.querySelector(".map-value").value;
      if (k) out[k] = v;
    }
    set(Object.keys(out).length ? out : undefined);
  };
  const addRow = (k = "", v = "", focus = false) => {
    const keyInput = h("input", {
      type: "text",
      class: "map-key mono",
      placeholder: "field",
      spellcheck: "false",
      value: k,
      onInput: collect,
    });
    const valueInput = h("textarea", {
      class: `map-value ${cel ? "mono code" : "mono"}`,
      rows: 1,
      spellcheck: "false",
      placeholder: cel ? "CEL expression" : "value",
      value: v,
      onInput: collect,
    });
    const remove = h(
      "button",
      {
        type: "button",
        class: "icon-btn",
        title: "Remove field",
        "aria-label": "Remove field",
        onClick: () => {
          row.remove();
          collect();
        },
      },
      "×",
    );
    const row = h(
      "div",
      { class: "map-row" },
      keyInput,
      h("span", { class: "map-arrow" }, cel ? "=" : ":"),
      valueInput,
      remove,
    );
    list.append(row);
    if (focus) keyInput.focus();
  };
  for (const [k, v] of rows)
    addRow(k, typeof v === "string" ? v : JSON.stringify(v));
  box.append(
    list,
    h(
      "button",
      {
        type: "button",
        class: "btn ghost small add-row",
        onClick: () => addRow("", "", true),
      },
      "+ Add field",
    ),
  );
  if (cel)
    box.append(
      h(
        "div",
        { class: "field-hint" },
        "Each value is CEL · input, execution.input, nodes.<key>.output",
      ),
    );
  return box;
}
