// The raw JSON editor: what a property no control fits gets (and the whole
// params, in the inspector's JSON mode). Keeps the last valid value.

import { humanize } from "./fieldlabel.js";
import { h } from "./util.js";

/** A raw JSON editor: keeps the last valid value, marks invalid input. */
export function jsonField(name, value, set, help, required) {
  const wrap = h("div", { class: "field field-json", "data-field": name });
  wrap.append(
    h(
      "div",
      { class: "field-label" },
      h("label", { class: "field-name" }, humanize(name)),
      required ? h("span", { class: "req" }, "required") : null,
      h("span", { class: "tag" }, "JSON"),
      help ? h("div", { class: "field-help" }, help) : null,
    ),
  );
  const status = h("div", { class: "field-error" });
  const area = h("textarea", {
    class: "mono code",
    rows: 4,
    spellcheck: "false",
    "data-param": name,
    placeholder: "JSON",
    value: value === undefined ? "" : JSON.stringify(value, null, 2),
    onInput: (e) => {
      const raw = e.target.value.trim();
      if (!raw) {
        area.classList.remove("invalid");
        status.textContent = "";
        set(undefined);
        return;
      }
      try {
        const parsed = JSON.parse(raw);
        area.classList.remove("invalid");
        status.textContent = "";
        set(parsed);
      } catch (err) {
        area.classList.add("invalid");
        status.textContent = `Not valid JSON: ${err.message}`;
      }
    },
  });
  wrap.append(area, status);
  return wrap;
}
