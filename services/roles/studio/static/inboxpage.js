// The Inbox page: every signal the tenant's running executions wait for
// (GET /api/v1/signals, the inbox read model), oldest first, with since when
// and until when. "Open" shows the execution on its process's canvas, where
// the waiting element's inspector holds the form that answers it.
//
// Shown over the designer when the hash says `view=inbox` (routes.js), like
// the Secrets page; the header's "Inbox" button and "Back" change the hash.

import { api, ApiError } from "./api.js";
import { navigateOverPage, showOverPage } from "./overpage.js";
import { openProcess } from "./document.js";
import { watch } from "./runs.js";
import { navigator_ } from "./state.js";
import { toast } from "./ui.js";
import { clear, clockTime, h, relativeTime, shortId } from "./util.js";

const root = () => document.getElementById("inbox-page");

/** Whether the page is the one shown. */
export function inboxShown() {
  return !root().hidden;
}

/** Show or hide the page (routes.js calls this on every hash change). */
export function showInbox(shown) {
  showOverPage("inbox", shown, () => {
    render();
  });
}

/** Go to the page or leave it, keeping the rest of the hash (`process=`). */
export function navigateInbox(shown) {
  navigateOverPage("inbox", shown);
}

function render() {
  const page = clear(root());
  const table = h("div", { class: "secrets-table", id: "inbox-table" });
  page.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", { id: "inbox-title", tabindex: "-1" }, "Inbox"),
      h(
        "div",
        { class: "row" },
        h(
          "button",
          { type: "button", class: "btn ghost", onClick: () => fill(table) },
          "Refresh",
        ),
        h(
          "button",
          {
            type: "button",
            class: "btn ghost",
            id: "inbox-back",
            onClick: () => navigateInbox(false),
          },
          "← Back to the designer",
        ),
      ),
    ),
    h(
      "p",
      { class: "page-text" },
      "What the tenant's running executions wait for: each waiting signal " +
        "element, oldest first. Open one to answer it from its element's form.",
    ),
    table,
  );
  fill(table);
}

async function fill(table) {
  let waits;
  try {
    waits = await api("GET", "/api/v1/signals");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401))
      toast(`Could not load the inbox: ${err.message}`, "error");
    return;
  }
  clear(table);
  if (!waits.length) {
    table.append(
      h("p", { class: "muted small empty-row" }, "Nothing waits for a signal."),
    );
    return;
  }
  const rows = waits.map((w) =>
    h(
      "tr",
      { "data-execution": w.execution_id, "data-element": w.element },
      h("td", {}, processName(w.process_id)),
      h("td", { class: "mono" }, shortId(w.execution_id)),
      h("td", { class: "mono" }, w.element),
      h("td", { class: "mono" }, w.name),
      h(
        "td",
        { title: w.waiting_since ?? "" },
        w.waiting_since ? relativeTime(w.waiting_since) : "",
      ),
      h("td", {}, w.timeout_at ? clockTime(w.timeout_at) : "none"),
      h(
        "td",
        { class: "secret-actions" },
        h(
          "button",
          {
            type: "button",
            class: "btn small soft",
            "data-action": "open-wait",
            onClick: () => open(w),
          },
          "Open",
        ),
      ),
    ),
  );
  table.append(
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...[
            "Process",
            "Execution",
            "Element",
            "Signal",
            "Waiting since",
            "Times out",
            "",
          ].map((t) => h("th", {}, t)),
        ),
      ),
      h("tbody", {}, ...rows),
    ),
  );
}

function processName(processId) {
  return navigator_.find(processId)?.process.name ?? shortId(processId ?? "");
}

async function open(wait) {
  // Not through the hash: routing would open the process a second time.
  history.replaceState(
    history.state,
    "",
    `${location.pathname}${location.search}#process=${encodeURIComponent(wait.process_id)}`,
  );
  showInbox(false);
  await openProcess(wait.process_id);
  watch(wait.execution_id);
}
