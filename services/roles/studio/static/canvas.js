// Kept whole: one Canvas class whose drawing, hit-testing and pan/zoom share private state; splitting it would only scatter that state.
// The SVG canvas: element cards, ports, connections, pan and zoom, and the
// overlays a run or a refused save puts on top (state badges, error bubbles).

import { badgeGroup, typeColor, typeIconGroup } from "./icons.js";
import { ERROR_PORT } from "./catalog.js";
import { Emitter, h, s } from "./util.js";

export const NODE_W = 188;
const NODE_H = 58;
const PORT_R = 6;
const MIN_K = 0.25;
const MAX_K = 2.5;

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export class Canvas extends Emitter {
  constructor(wrap) {
    super();
    this.wrap = wrap;
    this.doc = null;
    this.catalog = null;
    this.view = { x: 0, y: 0, k: 1 };
    this.selection = null; // {kind: "node", key} | {kind: "edge", index}
    this.run = null; // {nodes: {key: {state, …}}} while an execution is shown
    this.errors = new Map(); // key -> message, from a refused save
    this.drag = null;
    this._build();
  }

  _build() {
    this.svg = s("svg", {
      class: "canvas",
      id: "canvas",
      tabindex: "0",
      "aria-label": "Process canvas",
    });
    const defs = s("defs");
    const grid = s("pattern", {
      id: "grid-dots",
      width: 24,
      height: 24,
      patternUnits: "userSpaceOnUse",
    });
    grid.append(s("circle", { cx: 1, cy: 1, r: 1, class: "grid-dot" }));
    const gridMajor = s("pattern", {
      id: "grid-major",
      width: 120,
      height: 120,
      patternUnits: "userSpaceOnUse",
    });
    gridMajor.append(
      s("rect", { width: 120, height: 120, fill: "url(#grid-dots)" }),
    );
    gridMajor.append(
      s("circle", { cx: 1, cy: 1, r: 1.6, class: "grid-dot major" }),
    );
    this.gridPattern = gridMajor;
    defs.append(grid, gridMajor);
    for (const [id, cls] of [
      ["arrow", "arrow"],
      ["arrow-selected", "arrow selected"],
      ["arrow-error", "arrow error"],
      ["arrow-taken", "arrow taken"],
      ["arrow-dim", "arrow dim"],
      ["arrow-draft", "arrow draft"],
    ]) {
      const marker = s("marker", {
        id,
        viewBox: "0 0 10 10",
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: "auto-start-reverse",
        markerUnits: "userSpaceOnUse",
      });
      marker.setAttribute("markerWidth", "11");
      marker.setAttribute("markerHeight", "11");
      marker.append(s("path", { d: "M1 1.5 9 5 1 8.5z", class: cls }));
      defs.append(marker);
    }
    const shadow = s("filter", {
      id: "card-shadow",
      x: "-20%",
      y: "-30%",
      width: "140%",
      height: "170%",
    });
    shadow.append(
      s("feDropShadow", {
        dx: 0,
        dy: 1,
        stdDeviation: 1.2,
        "flood-color": "#0f172a",
        "flood-opacity": 0.08,
      }),
      s("feDropShadow", {
        dx: 0,
        dy: 6,
        stdDeviation: 8,
        "flood-color": "#0f172a",
        "flood-opacity": 0.07,
      }),
    );
    defs.append(shadow);
    this.svg.append(defs);
    this.gridRect = s("rect", {
      class: "grid-bg",
      width: "100%",
      height: "100%",
      fill: "url(#grid-major)",
    });
    this.svg.append(this.gridRect);
    this.viewport = s("g", { class: "viewport" });
    this.edgeLayer = s("g", { class: "edges" });
    this.nodeLayer = s("g", { class: "nodes" });
    this.draftLayer = s("g", { class: "draft" });
    this.errorLayer = s("g", { class: "error-bubbles" });
    this.viewport.append(
      this.edgeLayer,
      this.nodeLayer,
      this.errorLayer,
      this.draftLayer,
    );
    this.svg.append(this.viewport);
    this.wrap.prepend(this.svg);

    this.svg.addEventListener("pointerdown", (e) => this._onPointerDown(e));
    this.svg.addEventListener("wheel", (e) => this._onWheel(e), {
      passive: false,
    });
    this.svg.addEventListener("dblclick", (e) => {
      if (!e.target.closest(".node")) this.fit();
    });
    this._onMove = (e) => this._onPointerMove(e);
    this._onUp = (e) => this._onPointerUp(e);
    new ResizeObserver(() => this._applyView()).observe(this.wrap);
  }

  setDoc(doc, catalog) {
    this.doc = doc;
    this.catalog = catalog;
    this.selection = null;
    this.errors = new Map();
    this.render();
  }

  // ---- geometry ---------------------------------------------------------------------

  geometry(element) {
    const ports = this.catalog ? this.catalog.outPorts(element.type) : ["out"];
    const hasInput = this.catalog
      ? this.catalog.get(element.type).hasInput
      : element.type !== "trigger";
    const hgt = Math.max(NODE_H, 22 + ports.length * 22);
    const pos = element.position ?? { x: 0, y: 0 };
    const outs = ports.map((port, i) => ({
      port,
      x: NODE_W,
      y: Math.round((hgt * (i + 1)) / (ports.length + 1)),
    }));
    return {
      x: pos.x,
      y: pos.y,
      w: NODE_W,
      h: hgt,
      input: hasInput ? { x: 0, y: hgt / 2 } : null,
      outs,
      error: { port: ERROR_PORT, x: NODE_W - 30, y: hgt },
    };
  }

  _portPoint(element, port) {
    const g = this.geometry(element);
    if (port === ERROR_PORT)
      return { x: g.x + g.error.x, y: g.y + g.error.y, down: true };
    const out = g.outs.find((o) => o.port === (port || "out")) ?? g.outs[0];
    if (!out) return { x: g.x + g.w, y: g.y + g.h / 2 };
    return { x: g.x + out.x, y: g.y + out.y };
  }

  _inputPoint(element) {
    const g = this.geometry(element);
    return { x: g.x, y: g.y + g.h / 2 };
  }

  _curve(from, to) {
    if (from.down) {
      const dy = Math.max(40, Math.abs(to.y - from.y) / 2);
      const dx = Math.max(40, Math.abs(to.x - from.x) / 2);
      return `M${from.x} ${from.y} C${from.x} ${from.y + dy}, ${to.x - dx} ${to.y}, ${to.x} ${to.y}`;
    }
    const dx = Math.max(48, Math.abs(to.x - from.x) / 2);
    return `M${from.x} ${from.y} C${from.x + dx} ${from.y}, ${to.x - dx} ${to.y}, ${to.x} ${to.y}`;
  }

  // ---- rendering -------------------------------------------------------------------

  render() {
    this.edgeLayer.replaceChildren();
    this.nodeLayer.replaceChildren();
    this.errorLayer.replaceChildren();
    if (!this.doc) return;
    const thread = this.doc.thread;
    if (!thread) return;
    const byKey = new Map(thread.elements.map((e) => [e.key, e]));
    thread.connections.forEach((c, index) => {
      const source = byKey.get(c.source);
      const target = byKey.get(c.target);
      if (source && target)
        this.edgeLayer.append(this._edge(c, index, source, target));
    });
    for (const element of thread.elements) {
      this.nodeLayer.append(this._node(element));
      const error = this.errors.get(element.key);
      if (error) {
        // Drawn above every card, so a neighbour never hides it.
        const g = this.geometry(element);
        const bubble = s("foreignObject", {
          class: "error-bubble-fo",
          x: g.x - 6,
          y: g.y + g.h + 12,
          width: g.w + 90,
          height: 90,
        });
        // Under the element, "element 'key': " says nothing the position does not.
        const escaped = element.key.replace(/[.*+?^$()|[\]\\{}]/g, "\\$&");
        const prefix = new RegExp(
          "^element ['\"`“]?" + escaped + "['\"`”]?:\\s*",
        );
        const text = error.replace(prefix, "");
        bubble.append(
          h(
            "div",
            {
              class: "error-bubble",
              xmlns: "http://www.w3.org/1999/xhtml",
              "data-error-for": element.key,
              title: error,
            },
            h("div", { class: "error-text" }, text),
          ),
        );
        this.errorLayer.append(bubble);
      }
    }
    this._applyView();
  }

  nodeState(key) {
    if (!this.run) return null;
    return this.run.nodes?.[key]?.state ?? "pending";
  }

  _edge(connection, index, source, target) {
    const port = connection.source_port ?? "out";
    const from = this._portPoint(source, port);
    const to = this._inputPoint(target);
    const d = this._curve(from, to);
    const selected =
      this.selection?.kind === "edge" && this.selection.index === index;
    let flow = "";
    if (this.run) {
      const sState = this.nodeState(connection.source);
      const tState = this.nodeState(connection.target);
      const sourceDone = sState === "completed" || sState === "failed";
      const took = this.run.nodes?.[connection.source]?.port;
      const portMatches =
        !took || took === port || (port === ERROR_PORT && sState === "failed");
      if (
        sourceDone &&
        portMatches &&
        ["running", "completed", "failed"].includes(tState)
      ) {
        flow = tState === "running" ? "flowing" : "taken";
      } else if (tState === "skipped" || (sourceDone && took && !portMatches))
        flow = "dim";
    }
    const group = s("g", {
      class: ["edge", `port-${port}`, selected && "selected", flow]
        .filter(Boolean)
        .join(" "),
      "data-index": index,
      "data-source": connection.source,
      "data-target": connection.target,
      "data-port": port,
    });
    let marker = "arrow";
    if (selected) marker = "arrow-selected";
    else if (flow === "taken" || flow === "flowing") marker = "arrow-taken";
    else if (flow === "dim") marker = "arrow-dim";
    else if (port === ERROR_PORT) marker = "arrow-error";
    group.append(s("path", { class: "edge-hit", d }));
    group.append(
      s("path", { class: "edge-line", d, "marker-end": `url(#${marker})` }),
    );
    if (port !== "out" && Math.hypot(to.x - from.x, to.y - from.y) > 110) {
      // Halfway along the curve: B(0.5) = (P0 + 3·P1 + 3·P2 + P3) / 8.
      const nums = d.match(/-?[\d.]+/g).map(Number);
      const lx = (nums[0] + 3 * nums[2] + 3 * nums[4] + nums[6]) / 8;
      const ly = (nums[1] + 3 * nums[3] + 3 * nums[5] + nums[7]) / 8;
      const label = s("g", {
        class: `edge-label label-${port}`,
        transform: `translate(${lx} ${ly})`,
      });
      const width = port.length * 6.4 + 12;
      label.append(
        s("rect", { x: -width / 2, y: -8.5, width, height: 17, rx: 8.5 }),
      );
      label.append(s("text", { x: 0, y: 3.8, "text-anchor": "middle" }, port));
      group.append(label);
    }
    return group;
  }

  _node(element) {
    const g = this.geometry(element);
    const type = element.type;
    const color = typeColor(type);
    const state = this.nodeState(element.key);
    const selected =
      this.selection?.kind === "node" && this.selection.key === element.key;
    const error = this.errors.get(element.key);
    const info = this.catalog?.get(type);
    const classes = [
      "node",
      `type-${type}`,
      selected && "selected",
      error && "has-error",
      state && `state-${state}`,
    ];
    if (info?.unknown) classes.push("unknown-type");
    const group = s("g", {
      class: classes.filter(Boolean).join(" "),
      transform: `translate(${g.x} ${g.y})`,
      "data-key": element.key,
      "data-type": type,
      "data-state": state ?? "",
    });
    group.style.setProperty("--type-color", color);
    group.append(
      s(
        "title",
        {},
        `${element.key} · ${type}${element.name ? ` · ${element.name}` : ""}`,
      ),
    );
    group.append(
      s("rect", {
        class: "node-halo",
        x: -5,
        y: -5,
        width: g.w + 10,
        height: g.h + 10,
        rx: 16,
      }),
    );
    group.append(
      s("rect", {
        class: "node-body",
        width: g.w,
        height: g.h,
        rx: 12,
        filter: "url(#card-shadow)",
      }),
    );
    group.append(
      s("rect", {
        class: "node-tile",
        x: 11,
        y: g.h / 2 - 17,
        width: 34,
        height: 34,
        rx: 9,
      }),
    );
    const icon = typeIconGroup(type, 19, g.h / 2 - 9, 18);
    icon.style.color = color;
    group.append(icon);
    const labelRoom = g.outs.length > 1 ? 13 : 17;
    group.append(
      s(
        "text",
        { class: "node-key", x: 55, y: g.h / 2 - 2 },
        truncate(element.key, labelRoom),
      ),
    );
    const sub = element.name ? element.name : type;
    group.append(
      s(
        "text",
        { class: "node-sub", x: 55, y: g.h / 2 + 14 },
        truncate(sub, labelRoom + 3),
      ),
    );

    if (g.input) {
      const port = s("g", {
        class: "port port-in",
        "data-port-in": "true",
        transform: `translate(0 ${g.input.y})`,
      });
      port.append(
        s("circle", { class: "port-hit", r: 12 }),
        s("circle", { class: "port-dot", r: PORT_R }),
      );
      group.append(port);
    }
    for (const out of g.outs) {
      const port = s("g", {
        class: `port port-out port-${out.port}`,
        "data-port": out.port,
        transform: `translate(${out.x} ${out.y})`,
      });
      port.append(
        s("circle", { class: "port-hit", r: 12 }),
        s("circle", { class: "port-dot", r: PORT_R }),
      );
      if (out.port !== "out" || g.outs.length > 1) {
        port.append(
          s(
            "text",
            { class: "port-label", x: -11, y: 3.5, "text-anchor": "end" },
            out.port,
          ),
        );
      }
      group.append(port);
    }
    const errPort = s("g", {
      class: "port port-out port-error",
      "data-port": ERROR_PORT,
      transform: `translate(${g.error.x} ${g.error.y})`,
    });
    errPort.append(
      s("circle", { class: "port-hit", r: 11 }),
      s("circle", { class: "port-dot", r: PORT_R - 1 }),
    );
    errPort.append(
      s(
        "text",
        {
          class: "port-label error-label",
          x: 0,
          y: 19,
          "text-anchor": "middle",
        },
        "error",
      ),
    );
    group.append(errPort);

    if (state) group.append(badgeGroup(state, g.w - 3, 3));
    return group;
  }

  // ---- overlays -----------------------------------------------------------------------

  setRun(run) {
    this.run = run;
    this.render();
  }

  setErrors(errors) {
    this.errors = new Map(errors);
    this.render();
  }

  clearErrors(key) {
    if (key === undefined) this.errors.clear();
    else this.errors.delete(key);
    this.render();
  }

  select(selection) {
    this.selection = selection;
    this.render();
    this.emit("select", selection);
  }

  // ---- view ---------------------------------------------------------------------------

  _applyView() {
    const { x, y, k } = this.view;
    this.viewport.setAttribute("transform", `translate(${x} ${y}) scale(${k})`);
    this.gridPattern.setAttribute(
      "patternTransform",
      `translate(${x} ${y}) scale(${k})`,
    );
    this.emit("view", this.view);
  }

  toWorld(clientX, clientY) {
    const rect = this.svg.getBoundingClientRect();
    return {
      x: (clientX - rect.left - this.view.x) / this.view.k,
      y: (clientY - rect.top - this.view.y) / this.view.k,
    };
  }

  contains(clientX, clientY) {
    const rect = this.svg.getBoundingClientRect();
    return (
      clientX >= rect.left &&
      clientX <= rect.right &&
      clientY >= rect.top &&
      clientY <= rect.bottom
    );
  }

  zoomBy(factor, clientX, clientY) {
    const rect = this.svg.getBoundingClientRect();
    const px = clientX === undefined ? rect.width / 2 : clientX - rect.left;
    const py = clientY === undefined ? rect.height / 2 : clientY - rect.top;
    const k = Math.min(MAX_K, Math.max(MIN_K, this.view.k * factor));
    const ratio = k / this.view.k;
    this.view = {
      x: px - (px - this.view.x) * ratio,
      y: py - (py - this.view.y) * ratio,
      k,
    };
    this._applyView();
  }

  fit() {
    const elements = this.doc?.thread?.elements ?? [];
    const rect = this.svg.getBoundingClientRect();
    if (!elements.length || !rect.width) {
      this.view = { x: 40, y: 40, k: 1 };
      this._applyView();
      return;
    }
    let minX = Infinity;
    let minY = Infinity;
    let maxX = -Infinity;
    let maxY = -Infinity;
    for (const element of elements) {
      const g = this.geometry(element);
      minX = Math.min(minX, g.x);
      minY = Math.min(minY, g.y);
      maxX = Math.max(maxX, g.x + g.w);
      maxY = Math.max(maxY, g.y + g.h + 30);
    }
    const pad = 72;
    const k = Math.min(
      1,
      Math.max(
        MIN_K,
        Math.min(
          (rect.width - 2 * pad) / (maxX - minX),
          (rect.height - 2 * pad) / (maxY - minY),
        ),
      ),
    );
    this.view = {
      x: (rect.width - (maxX - minX) * k) / 2 - minX * k,
      y: (rect.height - (maxY - minY) * k) / 2 - minY * k,
      k,
    };
    this._applyView();
  }

  /** Where a new element added without a drop point should go: right of the selection, or
   *  the viewport centre, moved along until it overlaps nothing. */
  freeSpot() {
    const rect = this.svg.getBoundingClientRect();
    const elements = this.doc?.thread?.elements ?? [];
    const anchor =
      (this.selection?.kind === "node"
        ? this.doc?.element(this.selection.key)
        : null) ?? elements[elements.length - 1];
    let spot;
    if (anchor?.position)
      spot = { x: anchor.position.x + NODE_W + 70, y: anchor.position.y };
    else {
      const center = this.toWorld(
        rect.left + rect.width / 2,
        rect.top + rect.height / 2,
      );
      spot = { x: center.x - NODE_W / 2, y: center.y - NODE_H / 2 };
    }
    const overlaps = (p) =>
      elements.some((e) => {
        if (!e.position) return false;
        const g = this.geometry(e);
        return (
          p.x < g.x + g.w + 24 &&
          p.x + NODE_W + 24 > g.x &&
          p.y < g.y + g.h + 30 &&
          p.y + NODE_H + 30 > g.y
        );
      });
    for (let i = 0; i < 40 && overlaps(spot); i += 1)
      spot = { x: spot.x, y: spot.y + NODE_H + 40 };
    return spot;
  }

  // ---- pointer interaction -----------------------------------------------------------

  _onWheel(e) {
    e.preventDefault();
    if (e.ctrlKey || !e.shiftKey) {
      const factor = Math.exp(-e.deltaY * (e.ctrlKey ? 0.01 : 0.0016));
      this.zoomBy(factor, e.clientX, e.clientY);
    } else {
      this.view = { ...this.view, x: this.view.x - e.deltaY };
      this._applyView();
    }
  }

  _onPointerDown(e) {
    if (e.button !== 0 && e.button !== 1) return;
    this.svg.focus({ preventScroll: true });
    const target = e.target;
    const nodeEl = target.closest(".node");
    const portEl = target.closest("[data-port]");
    const edgeEl = target.closest(".edge");
    const start = { x: e.clientX, y: e.clientY };
    if (e.button === 1) {
      this.drag = { mode: "pan", start, origin: { ...this.view } };
    } else if (nodeEl && portEl && portEl.closest(".node") === nodeEl) {
      const key = nodeEl.dataset.key;
      this.drag = {
        mode: "connect",
        start,
        source: key,
        port: portEl.dataset.port,
      };
      this.svg.classList.add("connecting");
    } else if (nodeEl) {
      const key = nodeEl.dataset.key;
      const element = this.doc.element(key);
      if (!(this.selection?.kind === "node" && this.selection.key === key))
        this.select({ kind: "node", key });
      this.drag = {
        mode: "move",
        start,
        key,
        origin: { ...(element.position ?? { x: 0, y: 0 }) },
        moved: false,
      };
    } else if (edgeEl) {
      this.select({ kind: "edge", index: Number(edgeEl.dataset.index) });
      this.drag = null;
      return;
    } else {
      if (this.selection) this.select(null);
      this.drag = { mode: "pan", start, origin: { ...this.view } };
      this.svg.classList.add("panning");
    }
    e.preventDefault();
    window.addEventListener("pointermove", this._onMove);
    window.addEventListener("pointerup", this._onUp);
    window.addEventListener("pointercancel", this._onUp);
  }

  _onPointerMove(e) {
    const drag = this.drag;
    if (!drag) return;
    const dx = e.clientX - drag.start.x;
    const dy = e.clientY - drag.start.y;
    if (drag.mode === "pan") {
      this.view = {
        ...this.view,
        x: drag.origin.x + dx,
        y: drag.origin.y + dy,
      };
      this._applyView();
    } else if (drag.mode === "move") {
      if (!drag.moved && Math.hypot(dx, dy) < 3) return;
      drag.moved = true;
      const position = {
        x: drag.origin.x + dx / this.view.k,
        y: drag.origin.y + dy / this.view.k,
      };
      this.doc.moveElement(drag.key, position, { silent: true });
      this.render();
    } else if (drag.mode === "connect") {
      const source = this.doc.element(drag.source);
      const from = this._portPoint(source, drag.port);
      let to = this.toWorld(e.clientX, e.clientY);
      const hover = this._nodeAt(e.clientX, e.clientY);
      for (const el of this.nodeLayer.querySelectorAll(".node.drop-target"))
        el.classList.remove("drop-target");
      if (hover && hover.dataset.key !== drag.source) {
        hover.classList.add("drop-target");
        const targetEl = this.doc.element(hover.dataset.key);
        if (targetEl && this.geometry(targetEl).input)
          to = this._inputPoint(targetEl);
      }
      this.draftLayer.replaceChildren(
        s("path", {
          class: `draft-line port-${drag.port}`,
          d: this._curve(from, to),
          "marker-end": "url(#arrow-draft)",
        }),
      );
    }
  }

  _nodeAt(clientX, clientY) {
    const hit = document.elementFromPoint(clientX, clientY);
    return hit?.closest?.(".node") ?? null;
  }

  _onPointerUp(e) {
    window.removeEventListener("pointermove", this._onMove);
    window.removeEventListener("pointerup", this._onUp);
    window.removeEventListener("pointercancel", this._onUp);
    const drag = this.drag;
    this.drag = null;
    this.svg.classList.remove("panning", "connecting");
    if (!drag) return;
    if (drag.mode === "move" && drag.moved) {
      this.doc.moveElement(drag.key, this.doc.element(drag.key).position);
    } else if (drag.mode === "connect") {
      this.draftLayer.replaceChildren();
      const hover = this._nodeAt(e.clientX, e.clientY);
      if (hover && hover.dataset.key !== drag.source) {
        const problem = this.doc.connect(
          drag.source,
          drag.port,
          hover.dataset.key,
          this.catalog,
        );
        if (problem) this.emit("notice", problem);
      }
      this.render();
    }
  }
}
