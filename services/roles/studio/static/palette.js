// The canvas's empty states and the element palette (filter, drag onto the canvas).

import { auth } from "./api.js";
import { NODE_W } from "./canvas.js";
import { typeColor, typeIcon } from "./icons.js";
import { toast } from "./ui.js";
import { clear, h } from "./util.js";
import { $, app, canvas } from "./state.js";
import { newProcessDialog } from "./document.js";

// ---------------------------------------------------------------------------- empty states

export function renderEmpty() {
  const root = clear($("canvas-empty"));
  const hasDoc = Boolean(app.doc);
  $("canvas-tools").hidden = !hasDoc;
  $("canvas-hint").hidden = !hasDoc;
  if (hasDoc) return;
  if (app.notFound) {
    root.append(
      h(
        "div",
        { class: "empty-card not-found", "data-testid": "not-found" },
        h("div", { class: "empty-icon" }, typeIcon("fail", 24)),
        h("h2", {}, "Process not found"),
        h(
          "p",
          {},
          "There is no process ",
          h("code", {}, app.notFound),
          auth.tenant ? ` in tenant “${auth.tenant}”.` : ".",
          " It may have been deleted, or it belongs to another tenant.",
        ),
        h(
          "div",
          { class: "empty-actions" },
          h(
            "button",
            { type: "button", class: "btn primary", onClick: newProcessDialog },
            "+ New process",
          ),
        ),
      ),
    );
    return;
  }
  if (!auth.token) return;
  root.append(
    h(
      "div",
      { class: "empty-card" },
      h("div", { class: "empty-icon" }, typeIcon("join", 24)),
      h("h2", {}, "Design a process"),
      h(
        "p",
        {},
        "Open a process on the left, or create one: drag elements onto the canvas, connect their ports, save, and run it to watch every step live.",
      ),
      h(
        "div",
        { class: "empty-actions" },
        h(
          "button",
          { type: "button", class: "btn primary", onClick: newProcessDialog },
          "+ New process",
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------- palette

export function renderPalette() {
  const root = clear($("palette"));
  const filter = $("palette-filter").value.trim().toLowerCase();
  const types = app.catalog
    .list()
    .filter(
      (t) =>
        !filter ||
        t.type.includes(filter) ||
        t.description.toLowerCase().includes(filter),
    );
  if (!types.length) {
    root.append(
      h(
        "div",
        { class: "tree-empty" },
        app.catalog.list().length
          ? "No element matches."
          : "Loading element types…",
      ),
    );
    return;
  }
  for (const info of types) {
    const item = h(
      "div",
      {
        class: "palette-item",
        "data-palette-type": info.type,
        title: `${info.type}: ${info.description}\nDrag onto the canvas, or click to add.`,
        role: "button",
        tabindex: "0",
        onKeydown: (e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            addElementAt(info.type, canvas.freeSpot());
          }
        },
      },
      h("span", { class: "pi-icon" }, typeIcon(info.type, 18)),
      h(
        "span",
        { class: "pi-text" },
        h(
          "span",
          { class: "pi-name" },
          info.type,
          info.sideEffects
            ? h("span", { class: "fx", title: "Has side effects" }, "EFFECT")
            : null,
        ),
        h("span", { class: "pi-desc" }, info.description),
      ),
    );
    item.style.setProperty("--type-color", typeColor(info.type));
    item
      .querySelector(".pi-icon")
      .style.setProperty("--type-color", typeColor(info.type));
    item.addEventListener("pointerdown", (e) =>
      startPaletteDrag(e, info.type, item),
    );
    root.append(item);
  }
}

export function startPaletteDrag(event, type, item) {
  if (event.button !== 0) return;
  event.preventDefault();
  const start = { x: event.clientX, y: event.clientY };
  let ghost = null;
  const move = (e) => {
    if (!ghost && Math.hypot(e.clientX - start.x, e.clientY - start.y) < 4)
      return;
    if (!ghost) {
      ghost = item.cloneNode(true);
      ghost.classList.add("drag-ghost");
      document.body.append(ghost);
    }
    ghost.style.left = `${e.clientX}px`;
    ghost.style.top = `${e.clientY}px`;
  };
  const up = (e) => {
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    window.removeEventListener("pointercancel", up);
    if (ghost) {
      ghost.remove();
      if (canvas.contains(e.clientX, e.clientY)) {
        const world = canvas.toWorld(e.clientX, e.clientY);
        addElementAt(type, { x: world.x - NODE_W / 2, y: world.y - 32 });
      }
    } else {
      addElementAt(type, canvas.freeSpot());
    }
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
  window.addEventListener("pointercancel", up);
}

export function addElementAt(type, position) {
  if (!app.doc) {
    toast("Create or open a process first.", "warn");
    return;
  }
  if (
    type === "trigger" &&
    app.doc.thread.elements.some((e) => e.type === "trigger")
  ) {
    toast("A thread has exactly one trigger; this one already has it.", "warn");
  }
  const key = app.doc.addElement(type, position);
  canvas.select({ kind: "node", key });
}
