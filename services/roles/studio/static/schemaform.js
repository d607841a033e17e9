// A form generated from an element type's params JSON Schema.
//
// Strings, numbers, integers, booleans, enums and maps of strings get their own
// controls (CEL and templates in a monospace editor); nested objects with
// properties get a group; anything else is edited as raw JSON.

import { h } from "./util.js";

const CEL_NAMES = new Set([
  "expression",
  "condition",
  "when",
  "predicate",
  "filter",
]);
const PROSE_NAMES = new Set([
  "prompt",
  "system_prompt",
  "message",
  "description",
  "template",
]);

/** Follow `$ref`s (local `#/$defs/…` or `#/definitions/…`) against `root`. */
export function deref(schema, root, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 16) return schema || {};
  if (typeof schema.$ref === "string" && schema.$ref.startsWith("#/")) {
    const target = schema.$ref
      .slice(2)
      .split("/")
      .reduce(
        (node, part) =>
          node ? node[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined,
        root,
      );
    const { $ref, ...rest } = schema;
    return deref({ ...(target || {}), ...rest }, root, depth + 1);
  }
  return schema;
}

/** The schema without a `null` alternative, and whether null was allowed. */
function unwrapNullable(schema, root) {
  let node = deref(schema, root);
  let nullable = false;
  const alternatives = node.anyOf ?? node.oneOf;
  if (Array.isArray(alternatives)) {
    const rest = alternatives.filter((alt) => deref(alt, root).type !== "null");
    nullable = rest.length < alternatives.length;
    if (rest.length === 1) {
      const { anyOf, oneOf, ...own } = node;
      node = { ...deref(rest[0], root), ...own };
    }
  }
  if (Array.isArray(node.type)) {
    const types = node.type.filter((t) => t !== "null");
    nullable = nullable || types.length < node.type.length;
    node = { ...node, type: types.length === 1 ? types[0] : types };
  }
  return { node, nullable };
}

export function kindOf(name, schema, root, context = {}) {
  const { node } = unwrapNullable(schema, root);
  if (
    Array.isArray(node.enum) &&
    node.enum.every((v) => typeof v === "string" || typeof v === "number")
  )
    return "enum";
  if (node.const !== undefined) return "json";
  if (node.anyOf || node.oneOf || Array.isArray(node.type)) return "json";
  switch (node.type) {
    case "string": {
      const hint =
        `${node.format ?? ""} ${node.description ?? ""} ${node["x-language"] ?? ""}`.toLowerCase();
      if (
        node.format === "cel" ||
        node["x-cel"] ||
        CEL_NAMES.has(name) ||
        hint.includes("cel")
      )
        return "cel";
      if (PROSE_NAMES.has(name) || (node.maxLength ?? 0) > 200) return "text";
      return "string";
    }
    case "number":
      return "number";
    case "integer":
      return "integer";
    case "boolean":
      return "boolean";
    case "object": {
      const additional = node.additionalProperties
        ? deref(node.additionalProperties, root)
        : null;
      const props = node.properties && Object.keys(node.properties).length;
      if (!props && additional && additional.type === "string") return "map";
      if (props && (context.depth ?? 0) < 2) return "group";
      return "json";
    }
    default:
      return "json";
  }
}

function humanize(name) {
  const words = name.replace(/_s$/, " (seconds)").replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

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

function labelFor(name, schema, required, root) {
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

function field(name, schema, root, value, required, set, options) {
  const kind = kindOf(name, schema, root, options);
  const { node } = unwrapNullable(schema, root);
  const wrap = h("div", { class: `field field-${kind}`, "data-field": name });
  const placeholder =
    node.default !== undefined && node.default !== null
      ? String(node.default)
      : (node.examples?.[0] ?? "");
  switch (kind) {
    case "cel":
    case "text": {
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
      break;
    }
    case "string": {
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
      break;
    }
    case "number":
    case "integer": {
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
            const num =
              kind === "integer" ? Number.parseInt(raw, 10) : Number(raw);
            if (!Number.isNaN(num)) set(num);
          },
        }),
      );
      break;
    }
    case "boolean": {
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
      break;
    }
    case "enum": {
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
        ...node.enum.map((opt) =>
          h("option", { value: String(opt) }, String(opt)),
        ),
      );
      select.value = value === undefined || value === null ? "" : String(value);
      wrap.append(select);
      break;
    }
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

function coerceEnum(raw, options) {
  const match = options.find((o) => String(o) === raw);
  return match === undefined ? raw : match;
}

function mapEditor(name, value, set, cel) {
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
