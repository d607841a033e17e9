// The Secrets page: the tenant's secrets (name, who made and last changed
// each, when), adding one, replacing a value and deleting one. A value is
// typed into a password field, sent once, and the field is emptied as soon as
// the request has answered, whatever the answer: the page never shows a value
// and keeps none. A refusal shows the server's `detail`.
//
// It is shown over the designer when the hash says `view=secrets` (routes.js);
// the header's "Secrets" button and the page's "Back" button change the hash.

import { secrets } from "./secrets.js";
import { navigateOverPage, showOverPage } from "./overpage.js";
import { modal, toast } from "./ui.js";
import { clear, h, relativeTime } from "./util.js";

/** @typedef {import("./secrets.js").SecretOut} SecretOut */

const NAME_RULE = "[A-Z][A-Z0-9_]{0,63}";

const root = () => document.getElementById("secrets-page");

/** Whether the page is the one shown. */
export function secretsShown() {
  return !root().hidden;
}

/** Show or hide the page (routes.js calls this on every hash change). */
export function showSecrets(shown) {
  showOverPage("secrets", shown, () => {
    render();
    secrets.refresh();
  });
}

/** Go to the page or leave it, keeping the rest of the hash (`process=`). */
export function navigateSecrets(shown) {
  navigateOverPage("secrets", shown);
}

secrets.on("change", () => {
  if (secretsShown()) fillTable();
});

function render() {
  const page = clear(root());
  page.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", { id: "secrets-title", tabindex: "-1" }, "Secrets"),
      h(
        "button",
        {
          type: "button",
          class: "btn ghost",
          id: "secrets-back",
          onClick: () => navigateSecrets(false),
        },
        "← Back to the designer",
      ),
    ),
    h(
      "p",
      { class: "page-text" },
      "The tenant's API keys and passwords. Loom keeps them encrypted and " +
        "never shows a value again, not even here. Use one in an http " +
        "element's url, headers or body, or in an agent's prompt, as ",
      h("code", {}, "{{ secrets.NAME }}"),
      "; events and logs record *** in its place.",
    ),
    addForm(),
    h("div", { class: "secrets-table", id: "secrets-table" }),
  );
  fillTable();
}

function addForm() {
  const name = h("input", {
    type: "text",
    name: "name",
    id: "secret-name",
    class: "mono",
    placeholder: "STRIPE_KEY",
    title: `Capitals, digits and _ (${NAME_RULE})`,
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const value = valueInput("secret-value");
  const error = h("div", { class: "form-error", role: "alert" });
  const submit = h(
    "button",
    { type: "submit", class: "btn primary" },
    "Add secret",
  );
  const form = h(
    "form",
    {
      class: "secret-add",
      id: "secret-add",
      "aria-labelledby": "secret-add-title",
      novalidate: true,
      onSubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        const chosen = name.value.trim();
        submit.disabled = true;
        try {
          await secrets.create(chosen, value.value);
          name.value = "";
          toast(`Saved secret ${chosen}`, "success");
          name.focus();
        } catch (err) {
          error.textContent = `${err.message}${value.value ? " (enter the value again)" : ""}`;
        } finally {
          value.value = "";
          submit.disabled = false;
        }
      },
    },
    h("h2", { id: "secret-add-title" }, "Add a secret"),
    h(
      "div",
      { class: "secret-add-row" },
      h("label", {}, "Name", name),
      h("label", {}, "Value", value),
      submit,
    ),
    error,
  );
  return form;
}

/** A password field that browsers should neither fill nor remember. */
function valueInput(id) {
  return h("input", {
    type: "password",
    name: "value",
    id,
    autocomplete: "new-password",
    spellcheck: "false",
    "data-lpignore": "true",
  });
}

function fillTable() {
  const box = document.getElementById("secrets-table");
  if (!box) return;
  clear(box);
  if (!secrets.loaded) {
    box.append(h("div", { class: "empty-note" }, "Loading…"));
    return;
  }
  if (secrets.error) {
    box.append(
      h(
        "div",
        { class: "form-error", role: "alert" },
        `Could not list the secrets: ${secrets.error}`,
      ),
    );
    return;
  }
  if (!secrets.list.length) {
    box.append(h("div", { class: "empty-note" }, "No secrets yet."));
    return;
  }
  const body = h("tbody", {});
  for (const secret of secrets.list) body.append(row(secret));
  box.append(
    h(
      "table",
      { "aria-labelledby": "secrets-title" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Name"),
          h("th", { scope: "col" }, "Created"),
          h("th", { scope: "col" }, "Last changed"),
          h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
        ),
      ),
      body,
    ),
  );
}

/** "by ada, 2 min ago", the exact time on hover. */
function when(by, at) {
  return h(
    "span",
    { title: new Date(at).toLocaleString() },
    h("span", { class: "secret-by" }, by),
    h("span", { class: "muted" }, ` · ${relativeTime(at)}`),
  );
}

/** @param {SecretOut} secret */
function row(secret) {
  const actions = h("td", { class: "secret-actions" });
  const tr = h(
    "tr",
    { "data-secret": secret.name },
    h("td", {}, h("code", { class: "secret-name" }, secret.name)),
    h(
      "td",
      { class: "secret-created" },
      when(secret.created_by, secret.created_at),
    ),
    h(
      "td",
      { class: "secret-modified" },
      when(secret.modified_by, secret.modified_at),
    ),
    actions,
  );
  const buttons = () => {
    clear(actions).append(
      h(
        "button",
        {
          type: "button",
          class: "btn small",
          "data-action": "replace",
          "aria-label": `Replace the value of ${secret.name}`,
          onClick: () => replaceForm(),
        },
        "Replace",
      ),
      h(
        "button",
        {
          type: "button",
          class: "btn small danger",
          "data-action": "delete",
          "aria-label": `Delete ${secret.name}`,
          onClick: () => confirmDelete(secret.name),
        },
        "Delete",
      ),
    );
  };
  const replaceForm = () => {
    const value = valueInput(`replace-${secret.name}`);
    value.setAttribute("aria-label", `New value of ${secret.name}`);
    value.placeholder = "new value";
    const error = h("div", { class: "form-error", role: "alert" });
    const form = h(
      "form",
      {
        class: "secret-replace",
        onSubmit: async (e) => {
          e.preventDefault();
          error.textContent = "";
          try {
            await secrets.replace(secret.name, value.value);
            toast(`Replaced the value of ${secret.name}`, "success");
          } catch (err) {
            error.textContent = err.message;
          } finally {
            value.value = "";
          }
        },
        onKeydown: (e) => {
          if (e.key === "Escape") buttons();
        },
      },
      value,
      h("button", { type: "submit", class: "btn small primary" }, "Save"),
      h(
        "button",
        { type: "button", class: "btn small ghost", onClick: buttons },
        "Cancel",
      ),
      error,
    );
    clear(actions).append(form);
    value.focus();
  };
  buttons();
  return tr;
}

function confirmDelete(name) {
  modal({
    id: "delete-secret",
    title: `Delete secret ${name}?`,
    text:
      "Its value is gone for good. An element that still uses " +
      `{{ secrets.${name} }} fails with "unknown secret ${name}".`,
    submitLabel: "Delete",
    onSubmit: async () => {
      try {
        await secrets.remove(name);
      } catch (err) {
        return err.message;
      }
      toast(`Deleted secret ${name}`, "success");
      return null;
    },
  });
}
