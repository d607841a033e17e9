// "Insert secret": a small menu under the inspector fields that take
// templates (an http element's url, headers and body, an agent's prompt). It
// lists the tenant's secret names and puts `{{ secrets.NAME }}` at the cursor
// of the field's text box, so a key never has to be typed into a process.
// The names come from secrets.js and follow its changes.

import { secrets } from "./secrets.js";
import { h } from "./util.js";

/** The params that are templates with secrets, by element type (contract "Secrets"). */
export const SECRET_FIELDS = {
  http: ["url", "headers", "body"],
  agent: ["prompt"],
};

/** The text boxes of a field that a template goes into (not a header's name). */
const TARGETS = 'input[type="text"]:not(.map-key), textarea';

/** The template that names a secret. */
export function secretTemplate(name) {
  return `{{ secrets.${name} }}`;
}

/**
 * Add an "Insert secret" menu under each field of `form` that takes a secret.
 *
 * @param {HTMLElement} form  a schema form (schemaform.js): one `[data-field]` per param
 * @param {string} type       the element's type
 */
export function offerSecrets(form, type) {
  for (const name of SECRET_FIELDS[type] ?? []) {
    const wrap = form.querySelector(`:scope > [data-field="${name}"]`);
    if (wrap) wrap.append(insertMenu(wrap, name));
  }
}

/** Whether the cursor at `at` of JSON text is inside a string literal. */
function insideString(text, at) {
  let inside = false;
  for (let i = 0; i < at; i++) {
    if (text[i] === "\\" && inside) i++;
    else if (text[i] === '"') inside = !inside;
  }
  return inside;
}

function insertAt(box, name, json) {
  const start = box.selectionStart ?? box.value.length;
  const end = box.selectionEnd ?? start;
  let text = secretTemplate(name);
  if (json && !insideString(box.value, start)) text = JSON.stringify(text);
  box.focus();
  box.setRangeText(text, start, end, "end");
  box.dispatchEvent(new Event("input", { bubbles: true }));
}

function insertMenu(wrap, field) {
  let last = null;
  wrap.addEventListener("focusin", (e) => {
    if (e.target.matches?.(TARGETS)) last = e.target;
  });
  const hint = h("span", { class: "field-hint", role: "status" });
  const select = h("select", {
    "data-secret-insert": field,
    "aria-label": `Insert a secret into ${field}`,
    onChange: () => {
      const name = select.value;
      select.value = "";
      if (!name) return;
      const box = last?.isConnected ? last : wrap.querySelector(TARGETS);
      if (!box) {
        hint.textContent = "Add a header first, then insert into its value.";
        return;
      }
      hint.textContent = "";
      insertAt(box, name, wrap.classList.contains("field-json"));
    },
  });
  const fill = () => {
    const names = secrets.names;
    select.replaceChildren(
      h(
        "option",
        { value: "" },
        names.length ? "Insert secret…" : "No secrets yet",
      ),
      ...names.map((name) => h("option", { value: name }, name)),
    );
    select.disabled = !names.length;
    select.title = names.length
      ? `Puts {{ secrets.NAME }} at the cursor`
      : "Add one on the Secrets page (header)";
  };
  const off = secrets.on("change", () => {
    if (select.isConnected) fill();
    else off();
  });
  fill();
  if (!secrets.loaded) secrets.refresh();
  return h("div", { class: "secret-insert" }, select, hint);
}
