// Loom Studio: wires the navigator, palette, canvas, inspector and bottom panel
// to the REST API and the execution WebSocket. The concerns live in their own
// modules (session, palette, document, save, runs, routes); this is the listeners and start.

import { auth, takeTokenFromHash } from "./api.js";
import { logoSvg } from "./icons.js";

import { closeModal, toast } from "./ui.js";
import { h, isTyping } from "./util.js";
import {
  $,
  app,
  canvas,
  inspector,
  navigator_,
  runPanel,
  history_,
} from "./state.js";
import { renderIdentity, tokenDialog, renderHeader } from "./session.js";
import { renderEmpty, renderPalette } from "./palette.js";
import { newProcessDialog } from "./document.js";
import { save } from "./save.js";
import {
  readInput,
  runProcess,
  cancelExecution,
  rerun,
  shownRun,
  refreshOverlay,
  switchTab,
} from "./runs.js";
import { boot, reloadAll, route } from "./routes.js";
import { navigateSecrets, secretsShown } from "./secretspage.js";
import { inboxShown, navigateInbox } from "./inboxpage.js";

function wire() {
  $("brand-logo").append(logoSvg(24));
  $("btn-save").addEventListener("click", () => save());
  $("btn-run").addEventListener("click", () => runProcess());
  $("btn-run-2").addEventListener("click", () => runProcess());
  $("btn-new").addEventListener("click", () => newProcessDialog());
  $("identity").addEventListener("click", () => tokenDialog());
  $("btn-secrets").addEventListener("click", () =>
    navigateSecrets(!secretsShown()),
  );
  $("btn-inbox").addEventListener("click", () => navigateInbox(!inboxShown()));
  $("palette-filter").addEventListener("input", renderPalette);
  $("zoom-in").addEventListener("click", () => canvas.zoomBy(1.2));
  $("zoom-out").addEventListener("click", () => canvas.zoomBy(1 / 1.2));
  $("zoom-fit").addEventListener("click", () => canvas.fit());
  $("run-input").addEventListener("input", () => readInput());
  for (const button of document.querySelectorAll(".tab"))
    button.addEventListener("click", () => switchTab(button.dataset.tab));

  canvas.on("select", (selection) => {
    inspector.select(selection);
    if (selection?.kind === "node") history_.setSelectedKey(selection.key);
  });
  canvas.on("view", (view) => {
    $("zoom-level").textContent = `${Math.round(view.k * 100)}%`;
  });
  canvas.on("notice", (text) => toast(text, "warn"));
  inspector.on("delete", (selection) => removeSelection(selection));
  inspector.on("meta", renderHeader);
  inspector.on("rerun", (key) => {
    const run = shownRun().run;
    if (run?.execution_id) rerun(run.execution_id, key);
  });
  runPanel.on("cancel", cancelExecution);
  runPanel.on(
    "focus",
    (key) =>
      key && app.doc?.element(key) && canvas.select({ kind: "node", key }),
  );
  history_.on("show", () => refreshOverlay());
  history_.on("rerun", ({ executionId, key }) => rerun(executionId, key));
  history_.on(
    "focus",
    (key) =>
      key && app.doc?.element(key) && canvas.select({ kind: "node", key }),
  );
  history_.on("count", (n) => {
    $("tab-history").replaceChildren(
      "History",
      n ? h("span", { class: "count" }, String(n)) : "",
    );
  });

  document.addEventListener("keydown", (e) => {
    const mod = e.ctrlKey || e.metaKey;
    if (mod && e.key.toLowerCase() === "s") {
      e.preventDefault();
      save();
      return;
    }
    if (mod && e.key === "Enter") {
      e.preventDefault();
      runProcess();
      return;
    }
    if (isTyping(e.target) || document.querySelector(".modal-backdrop")) return;
    if (secretsShown() || inboxShown()) return; // the canvas is hidden: leave it alone
    if ((e.key === "Delete" || e.key === "Backspace") && canvas.selection) {
      e.preventDefault();
      removeSelection(canvas.selection);
    } else if (e.key === "Escape" && canvas.selection) {
      canvas.select(null);
    }
  });

  window.addEventListener("hashchange", async () => {
    const token = takeTokenFromHash();
    if (token) {
      auth.set(token);
      renderIdentity();
      if (!app.booted) return boot();
      closeModal();
      return reloadAll();
    }
    if (app.booted) await route();
  });
  window.addEventListener("beforeunload", (e) => {
    if (app.doc?.dirty) {
      e.preventDefault();
      e.returnValue = "";
    }
  });

  // Resize the bottom panel.
  $("bottom-resize").addEventListener("pointerdown", (e) => {
    e.preventDefault();
    const startY = e.clientY;
    const startH = $("bottom").getBoundingClientRect().height;
    const move = (ev) =>
      document.documentElement.style.setProperty(
        "--bottom-h",
        `${Math.max(120, Math.min(window.innerHeight * 0.7, startH - (ev.clientY - startY)))}px`,
      );
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  });
}

function removeSelection(selection) {
  if (!app.doc || !selection) return;
  if (selection.kind === "node") {
    app.doc.removeElement(selection.key);
    app.errors.delete(selection.key);
    canvas.errors.delete(selection.key);
  } else if (selection.kind === "edge") {
    app.doc.removeConnection(selection.index);
  }
  canvas.select(null);
}

function start() {
  wire();
  const token = takeTokenFromHash();
  if (token) auth.set(token);
  else auth.load();
  renderIdentity();
  renderHeader();
  renderPalette();
  navigator_.render();
  inspector.render();
  renderEmpty();
  if (!auth.token) {
    navigator_.loaded = true;
    navigator_.error = "sign in first";
    navigator_.render();
    tokenDialog();
    return;
  }
  boot();
}

start();
