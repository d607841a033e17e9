// The element-type catalog and the process document the editor changes.

import { Emitter } from "./util.js";

export const ERROR_PORT = "error";
export const KEY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;
const TERMINAL_TYPES = new Set(["end", "fail"]);

function portName(port) {
  if (typeof port === "string") return port;
  if (port && typeof port === "object")
    return port.name ?? port.port ?? port.key ?? null;
  return null;
}

/** Every element type the server knows, tolerant of small differences in shape. */
export class Catalog {
  constructor(body) {
    this.types = new Map();
    let list = [];
    if (Array.isArray(body)) list = body;
    else if (body && typeof body === "object") {
      const wrapped = body.element_types ?? body.types ?? body.items;
      if (Array.isArray(wrapped)) list = wrapped;
      else if (wrapped && typeof wrapped === "object")
        list = Object.entries(wrapped).map(([k, v]) => ({ type: k, ...v }));
      else
        list = Object.entries(body).map(([k, v]) => ({
          type: k,
          ...(v && typeof v === "object" ? v : {}),
        }));
    }
    for (const raw of list) {
      const type = raw.type ?? raw.name ?? raw.key;
      if (!type) continue;
      const declared = raw.ports ?? raw.output_ports ?? raw.outputs;
      let ports = Array.isArray(declared)
        ? declared.map(portName).filter(Boolean)
        : null;
      if (!ports) ports = type === "condition" ? ["true", "false"] : ["out"];
      ports = ports.filter((p) => p !== ERROR_PORT);
      if (TERMINAL_TYPES.has(type)) ports = ports.filter((p) => p !== "out");
      this.types.set(type, {
        type,
        description: raw.description ?? raw.summary ?? "",
        schema:
          raw.params_schema ?? raw.params ?? raw.schema ?? raw.parameters ?? {},
        ports,
        sideEffects: Boolean(
          raw.side_effects ?? raw.has_side_effects ?? raw.effects,
        ),
        hasInput: type !== "trigger",
      });
    }
  }

  list() {
    return [...this.types.values()];
  }

  get(type) {
    return (
      this.types.get(type) ?? {
        type,
        description: "",
        schema: {},
        ports: TERMINAL_TYPES.has(type) ? [] : ["out"],
        sideEffects: false,
        hasInput: type !== "trigger",
        unknown: true,
      }
    );
  }

  /** Output ports drawn on the right of a card (the error port is drawn apart). */
  outPorts(type) {
    return this.get(type).ports;
  }
}

function cleanElement(raw) {
  const element = { key: String(raw.key), type: String(raw.type) };
  if (raw.name) element.name = String(raw.name);
  if (
    raw.params &&
    typeof raw.params === "object" &&
    Object.keys(raw.params).length
  ) {
    element.params = structuredClone(raw.params);
  }
  const pos = raw.position;
  if (pos && Number.isFinite(Number(pos.x)) && Number.isFinite(Number(pos.y))) {
    element.position = { x: Number(pos.x), y: Number(pos.y) };
  }
  return element;
}

function cleanConnection(raw) {
  const connection = { source: String(raw.source), target: String(raw.target) };
  const port = raw.source_port ?? raw.port;
  if (port && port !== "out") connection.source_port = String(port);
  return connection;
}

function cleanThread(raw, index) {
  return {
    key: String(raw.key ?? `thread_${index + 1}`),
    name: raw.name ? String(raw.name) : undefined,
    elements: (raw.elements ?? []).map(cleanElement),
    connections: (raw.connections ?? []).map(cleanConnection),
  };
}

function nameOf(value) {
  if (value && typeof value === "object")
    return value.name ?? value.title ?? "";
  return value ?? "";
}

/**
 * The process being edited: its identity, the version it was loaded from, its
 * threads, and whether it has unsaved changes. Emits "change" (structure or
 * params changed) and "meta" (identity, version or dirtiness changed).
 */
export class ProcessDoc extends Emitter {
  constructor() {
    super();
    this.id = null;
    this.version = null; // the version shown
    this.latest = null; // the newest version known: the expected_version of the next save
    this.project = "";
    this.app = "";
    this.name = "";
    this.threads = [];
    this.threadIndex = 0;
    this.dirty = false;
    this.audit = {};
  }

  static blank({ project, app, name }) {
    const doc = new ProcessDoc();
    doc.project = project;
    doc.app = app;
    doc.name = name;
    doc.threads = [
      {
        key: "main",
        name: "Main",
        elements: [
          { key: "start", type: "trigger", position: { x: 80, y: 200 } },
        ],
        connections: [],
      },
    ];
    doc.dirty = true;
    return doc;
  }

  /** Build from `GET /api/v1/processes/{id}`, tolerant of the definition being nested. */
  static fromServer(body, fallback = {}) {
    const doc = new ProcessDoc();
    const def =
      body.definition && typeof body.definition === "object"
        ? body.definition
        : body;
    doc.id = body.process_id ?? body.id ?? fallback.id ?? null;
    doc.version = body.version ?? def.version ?? null;
    doc.latest = Math.max(
      Number(body.latest_version ?? body.current_version ?? 0),
      ...(Array.isArray(body.versions)
        ? body.versions.map((v) => Number(v?.version ?? v) || 0)
        : [0]),
      Number(doc.version ?? 0),
      Number(fallback.latest ?? 0),
    );
    doc.project =
      nameOf(body.project ?? def.project ?? body.project_name) ||
      fallback.project ||
      "";
    doc.app =
      nameOf(body.app ?? def.app ?? body.app_name) || fallback.app || "";
    doc.name = nameOf(body.name ?? def.name) || fallback.name || "";
    doc.threads = (def.threads ?? body.threads ?? []).map(cleanThread);
    if (!doc.threads.length)
      doc.threads = [
        { key: "main", name: "Main", elements: [], connections: [] },
      ];
    for (const field of [
      "created_at",
      "created_by",
      "modified_at",
      "modified_by",
    ]) {
      doc.audit[field] = body[field] ?? def[field] ?? null;
    }
    doc.projectId =
      body.project_id ?? body.project?.project_id ?? body.project?.id ?? null;
    doc.appId = body.app_id ?? body.app?.app_id ?? body.app?.id ?? null;
    return doc;
  }

  get thread() {
    return this.threads[this.threadIndex] ?? this.threads[0];
  }

  get isNew() {
    return !this.id;
  }

  allElements() {
    return this.threads.flatMap((t) => t.elements);
  }

  element(key) {
    return this.allElements().find((e) => e.key === key) ?? null;
  }

  threadOf(key) {
    return (
      this.threads.find((t) => t.elements.some((e) => e.key === key)) ?? null
    );
  }

  markDirty() {
    if (!this.dirty) {
      this.dirty = true;
      this.emit("meta", this);
    }
  }

  changed(what = {}) {
    this.markDirty();
    this.emit("change", what);
  }

  newKey(type) {
    const taken = new Set(this.allElements().map((e) => e.key));
    const base =
      type === "trigger"
        ? "start"
        : String(type).replace(/[^A-Za-z0-9_]/g, "_") || "element";
    if (!taken.has(base) && type === "trigger") return base;
    for (let i = 1; ; i += 1) {
      const candidate = `${base}_${i}`;
      if (!taken.has(candidate)) return candidate;
    }
  }

  addElement(type, position) {
    const key = this.newKey(type);
    const element = {
      key,
      type,
      position: { x: Math.round(position.x), y: Math.round(position.y) },
    };
    this.thread.elements.push(element);
    this.changed({ added: key });
    return key;
  }

  moveElement(key, position, { silent = false } = {}) {
    const element = this.element(key);
    if (!element) return;
    element.position = { x: Math.round(position.x), y: Math.round(position.y) };
    if (silent) this.markDirty();
    else this.changed({ moved: key });
  }

  removeElement(key) {
    const thread = this.threadOf(key);
    if (!thread) return;
    thread.elements = thread.elements.filter((e) => e.key !== key);
    thread.connections = thread.connections.filter(
      (c) => c.source !== key && c.target !== key,
    );
    this.changed({ removed: key });
  }

  /** Connect `source`'s `port` to `target`; answers an error message or null. */
  connect(source, port, target, catalog) {
    if (source === target) return "An element cannot connect to itself.";
    const thread = this.threadOf(source);
    if (!thread || thread !== this.threadOf(target))
      return "Both ends must be in the same thread.";
    const targetEl = this.element(target);
    if (targetEl && catalog && !catalog.get(targetEl.type).hasInput)
      return "A trigger has no input.";
    const sourcePort = port && port !== "out" ? port : undefined;
    const exists = thread.connections.some(
      (c) =>
        c.source === source &&
        c.target === target &&
        (c.source_port ?? "out") === (sourcePort ?? "out"),
    );
    if (exists) return "These are already connected.";
    const connection = { source, target };
    if (sourcePort) connection.source_port = sourcePort;
    thread.connections.push(connection);
    this.changed({ connected: connection });
    return null;
  }

  removeConnection(index) {
    const thread = this.thread;
    if (index < 0 || index >= thread.connections.length) return;
    thread.connections.splice(index, 1);
    this.changed({ disconnected: index });
  }

  /** Rename an element's key (and every connection naming it); answers an error or null. */
  renameKey(oldKey, newKey) {
    if (oldKey === newKey) return null;
    if (!KEY_PATTERN.test(newKey))
      return "Keys are 1–128 letters, digits or _ . : - (not starting with . : -).";
    if (this.element(newKey))
      return `Another element already has the key “${newKey}”.`;
    const element = this.element(oldKey);
    if (!element) return "No such element.";
    element.key = newKey;
    for (const thread of this.threads) {
      for (const c of thread.connections) {
        if (c.source === oldKey) c.source = newKey;
        if (c.target === oldKey) c.target = newKey;
      }
    }
    this.changed({ renamed: [oldKey, newKey] });
    return null;
  }

  setElementName(key, name) {
    const element = this.element(key);
    if (!element) return;
    if (name) element.name = name;
    else delete element.name;
    this.changed({ edited: key });
  }

  setParams(key, params) {
    const element = this.element(key);
    if (!element) return;
    if (params && Object.keys(params).length) element.params = params;
    else delete element.params;
    this.changed({ edited: key });
  }

  /** The body of POST/PUT /api/v1/processes (without expected_version). */
  toDefinition() {
    return {
      project: this.project,
      app: this.app,
      name: this.name,
      threads: this.threads.map((t) => {
        const thread = { key: t.key };
        if (t.name) thread.name = t.name;
        thread.elements = t.elements.map(cleanElement);
        thread.connections = t.connections.map(cleanConnection);
        return thread;
      }),
    };
  }

  /** Give a position to every element that has none: layers by distance from the trigger. */
  layoutMissing() {
    let placedAny = false;
    for (const thread of this.threads) {
      const missing = thread.elements.filter((e) => !e.position);
      if (!missing.length) continue;
      const depth = new Map();
      const roots = thread.elements
        .filter((e) => e.type === "trigger")
        .map((e) => e.key);
      const queue = roots.length
        ? [...roots]
        : [thread.elements[0]?.key].filter(Boolean);
      for (const key of queue) depth.set(key, 0);
      while (queue.length) {
        const key = queue.shift();
        for (const c of thread.connections) {
          if (c.source !== key) continue;
          const d = depth.get(key) + 1;
          if (!depth.has(c.target) || depth.get(c.target) < d) {
            if (d > thread.elements.length) continue; // a cycle: stop climbing
            depth.set(c.target, d);
            queue.push(c.target);
          }
        }
      }
      const rows = new Map();
      for (const element of thread.elements) {
        const d = depth.get(element.key) ?? 0;
        const row = rows.get(d) ?? 0;
        rows.set(d, row + 1);
        if (!element.position) {
          element.position = { x: 80 + d * 270, y: 80 + row * 120 };
          placedAny = true;
        }
      }
    }
    return placedAny;
  }
}
