// Toasts, the canvas banner and modal dialogs.

import { clear, h } from "./util.js";

export function toast(message, kind = "info", ms = 4200) {
  const root = document.getElementById("toasts");
  const node = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("div", {}, message),
  );
  root.append(node);
  setTimeout(() => node.remove(), ms);
  return node;
}

/** Show a banner over the canvas: {title, detail, kind, actions: [{label, primary, onClick}]}. */
export function banner(options) {
  const root = document.getElementById("banner");
  clear(root);
  if (!options) {
    root.hidden = true;
    delete root.dataset.kind;
    return;
  }
  root.className = `banner ${options.kind || ""}`;
  root.dataset.kind = options.id || options.kind || "";
  root.append(
    h(
      "div",
      { class: "banner-text" },
      h("div", { class: "banner-title" }, options.title),
      options.detail
        ? h("div", { class: "banner-detail" }, options.detail)
        : null,
    ),
    ...(options.actions || []).map((action) =>
      h(
        "button",
        {
          type: "button",
          class: `btn small ${action.primary ? "primary" : "ghost"}`,
          "data-action": action.id || action.label,
          onClick: () => action.onClick(),
        },
        action.label,
      ),
    ),
  );
  root.hidden = false;
}

/**
 * A modal with a form. `fields`: [{name, label, value, placeholder, type, list, rows}].
 * `onSubmit(values)` may throw/return a string to show as an error and keep it open.
 */
export function modal({
  title,
  text,
  fields = [],
  submitLabel = "OK",
  cancelLabel = "Cancel",
  onSubmit,
  id,
  extra,
}) {
  const root = document.getElementById("modal-root");
  clear(root);
  const error = h("div", { class: "form-error" });
  const inputs = {};
  const body = h("div", { class: "modal-body" });
  for (const field of fields) {
    let input;
    if (field.rows) {
      input = h("textarea", {
        name: field.name,
        rows: field.rows,
        class: field.mono ? "mono code" : "",
        placeholder: field.placeholder || "",
        spellcheck: "false",
        value: field.value || "",
      });
    } else {
      input = h("input", {
        type: field.type || "text",
        name: field.name,
        placeholder: field.placeholder || "",
        value: field.value || "",
        autocomplete: "off",
        spellcheck: "false",
        list: field.list ? `dl-${field.name}` : undefined,
      });
    }
    inputs[field.name] = input;
    const datalist = field.list
      ? h(
          "datalist",
          { id: `dl-${field.name}` },
          ...field.list.map((v) => h("option", { value: v })),
        )
      : null;
    body.append(h("label", {}, field.label, input, datalist));
  }
  if (extra) body.append(extra);
  body.append(error);
  let backdrop = null;
  const close = () => backdrop?.remove();
  const submit = async (event) => {
    event?.preventDefault();
    const values = Object.fromEntries(
      Object.entries(inputs).map(([k, v]) => [k, v.value.trim()]),
    );
    try {
      const problem = await onSubmit?.(values);
      if (typeof problem === "string" && problem) {
        error.textContent = problem;
        return;
      }
      close();
    } catch (err) {
      error.textContent = err?.message || String(err);
    }
  };
  const form = h(
    "form",
    {
      class: "modal",
      role: "dialog",
      "aria-modal": "true",
      "aria-label": title,
      "data-modal": id || "",
      onSubmit: submit,
    },
    h(
      "div",
      { class: "modal-head" },
      h("h2", {}, title),
      text ? h("p", {}, text) : null,
    ),
    body,
    h(
      "div",
      { class: "modal-foot" },
      cancelLabel
        ? h(
            "button",
            { type: "button", class: "btn ghost", onClick: close },
            cancelLabel,
          )
        : null,
      h("button", { type: "submit", class: "btn primary" }, submitLabel),
    ),
  );
  backdrop = h(
    "div",
    {
      class: "modal-backdrop",
      onKeydown: (e) => {
        if (e.key === "Escape" && cancelLabel) close();
      },
    },
    form,
  );
  root.append(backdrop);
  const first =
    Object.values(inputs).find((i) => !i.value) || Object.values(inputs)[0];
  setTimeout(() => first?.focus(), 0);
  return { close, inputs, error };
}

export function closeModal() {
  clear(document.getElementById("modal-root"));
}
