// The form that answers a waiting `signal` element: its data built from the
// element's JSON Schema with the inspector's own schema-form code (a JSON field
// when the schema describes no properties), sent to
// POST /api/v1/executions/{id}/signals/{name}. A refusal (the data does not fit
// the schema, the execution ended) is shown as the API words it.

import { api } from "./api.js";
import { jsonField } from "./jsonfield.js";
import { schemaForm } from "./schemaform.js";
import { h } from "./util.js";

/**
 * @param {string} executionId
 * @param {string} key the element's key
 * @param {{name?: string, schema?: any}} params the element's params
 */
export function signalForm(executionId, key, params) {
  const name = params?.name ?? "";
  const schema = params?.schema;
  let data = null;
  const set = (value) => {
    data = value === undefined ? null : value;
  };
  const described =
    schema && typeof schema === "object" && schema.properties !== undefined;
  if (described) data = {};
  const fields = described
    ? schemaForm(schema, {}, set)
    : jsonField("data", undefined, set);
  const status = h("div", {
    class: "signal-status small",
    role: "status",
    "data-signal-status": key,
  });
  const send = h(
    "button",
    {
      type: "button",
      class: "btn small primary",
      "data-action": "send-signal",
      onClick: async () => {
        send.disabled = true;
        status.textContent = "Sending…";
        status.classList.remove("error");
        try {
          const path = `/api/v1/executions/${encodeURIComponent(executionId)}/signals/${encodeURIComponent(name)}`;
          await api("POST", path, { data });
          status.textContent = `Signal ${name} sent.`;
        } catch (err) {
          status.textContent = err.message || String(err);
          status.classList.add("error");
          send.disabled = false;
        }
      },
    },
    `Send signal ${name}`,
  );
  return h(
    "div",
    { class: "signal-form", "data-signal-for": key },
    h("div", { class: "json-label" }, `Waiting for signal “${name}”`),
    fields,
    h("div", { class: "row" }, send),
    status,
  );
}
