// Who is signed in (token dialog, identity chip), the header buttons and the connection badge.

import { auth } from "./api.js";
import { modeText } from "./runpanel.js";
import { closeModal, modal } from "./ui.js";
import { clear, h } from "./util.js";
import { $, app } from "./state.js";
import { openProcess } from "./document.js";

import { boot, reloadAll } from "./routes.js";

// ---------------------------------------------------------------------------- identity

export function renderIdentity() {
  const tenant = auth.tenant;
  $("tenant-name").textContent = tenant
    ? tenant
    : auth.token
      ? "unknown tenant"
      : "not signed in";
  $("sub-name").textContent = auth.subject
    ? auth.subject
    : auth.token
      ? ""
      : "paste a token";
  const initials =
    (auth.subject || tenant || "?")
      .replace(/[^A-Za-z0-9]/g, "")
      .slice(0, 2)
      .toUpperCase() || "?";
  $("avatar").textContent = initials;
  $("identity").dataset.tenant = tenant || "";
  $("identity").title = tenant
    ? `Tenant ${tenant}${auth.subject ? ` · ${auth.subject}` : ""} — change token`
    : "Paste a token";
}

export function tokenDialog(message) {
  const info = auth.token
    ? h(
        "div",
        { class: "muted small" },
        `Current: tenant ${auth.tenant ?? "?"}, ${auth.subject ?? "?"}`,
        auth.claims?.exp
          ? ` · expires ${new Date(auth.claims.exp * 1000).toLocaleString()}`
          : "",
        " · ",
        h(
          "a",
          {
            href: "#",
            onClick: (e) => {
              e.preventDefault();
              auth.clear();
              closeModal();
              tokenDialog();
            },
          },
          "Sign out",
        ),
      )
    : null;
  modal({
    id: "token",
    title: message ? "Sign in again" : "Sign in to Loom",
    text: message
      ? `${message} Paste a fresh token.`
      : "Paste a Loom token (JWT). `make run` prints a link that signs you in; `loom token --tenant T --sub U` mints one.",
    fields: [
      {
        name: "token",
        label: "Token",
        rows: 4,
        mono: true,
        placeholder: "eyJhbGciOi…",
      },
    ],
    submitLabel: "Use token",
    cancelLabel: auth.token ? "Cancel" : null,
    extra: info,
    onSubmit: async ({ token }) => {
      if (!token) return "Paste a token first.";
      auth.set(token);
      if (!auth.claims)
        return "That does not look like a JWT (three dot-separated parts).";
      if (!auth.tenant) return "The token has no tenant_id claim.";
      if (auth.expired) return "That token has expired.";
      renderIdentity();
      if (!app.booted) await boot();
      else await reloadAll();
      return null;
    },
  });
}

auth.on("unauthorized", (detail) => {
  if (document.querySelector('[data-modal="token"]')) return;
  tokenDialog(`Loom refused the token (${detail}).`);
});

// ---------------------------------------------------------------------------- header

export function renderHeader() {
  const crumbs = clear($("crumbs"));
  const doc = app.doc;
  $("btn-save").disabled = !doc;
  $("btn-run").disabled = !doc;
  $("btn-run-2").disabled = !doc;
  if (!doc) {
    if (app.notFound)
      crumbs.append(h("span", { class: "crumb current" }, "Process not found"));
    return;
  }
  crumbs.append(
    h("span", { class: "crumb", title: "Project" }, doc.project || "—"),
    h("span", { class: "sep" }, "/"),
    h("span", { class: "crumb", title: "App" }, doc.app || "—"),
    h("span", { class: "sep" }, "/"),
    h(
      "span",
      { class: "crumb current", id: "process-title" },
      doc.name || "Untitled",
    ),
  );
  if (doc.id && doc.latest) {
    const select = h(
      "select",
      {
        class: "version",
        "aria-label": "Version",
        id: "version-select",
        onChange: (e) =>
          openProcess(doc.id, { version: Number(e.target.value) }),
      },
      ...Array.from({ length: doc.latest }, (_, i) => doc.latest - i).map((v) =>
        h(
          "option",
          { value: String(v) },
          v === doc.latest ? `v${v} · latest` : `v${v}`,
        ),
      ),
    );
    select.value = String(doc.version ?? doc.latest);
    crumbs.append(select);
  }
  if (doc.isNew)
    crumbs.append(
      h("span", { class: "dirty-dot", id: "dirty" }, "New · not saved"),
    );
  else if (doc.dirty)
    crumbs.append(
      h("span", { class: "dirty-dot", id: "dirty" }, "Unsaved changes"),
    );
}

export function setConn(mode) {
  const conn = $("conn");
  conn.hidden = !mode || mode === "idle";
  conn.dataset.mode = mode || "idle";
  conn.textContent = modeText(mode);
  conn.title =
    {
      live: "Receiving events over the WebSocket",
      polling:
        "WebSocket down: polling /status every second while reconnecting",
      connecting: "Opening the WebSocket",
      done: "The execution has finished",
      error: "The execution cannot be followed",
    }[mode] ?? "";
}
