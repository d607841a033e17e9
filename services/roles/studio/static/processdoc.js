// The process being edited: its identity, the version it was loaded from,
// its threads of elements and connections, whether it has unsaved changes, and
// every edit the editor makes to it. The element types are catalog.js's.

import { layoutMissing } from "./layout.js";
import { cleanTrigger } from "./triggers.js";
import { Emitter } from "./util.js";

/**
 * `GET /api/v1/processes/{id}` (services/roles/api/schemas.py ProcessOut:
 * projections/catalog.py ProcessSummary with the version's threads, each a
 * domain/definition.py ThreadDef). Only the fields read here:
 *
 * @typedef {object} ProcessOut
 * @property {string} process_id
 * @property {number} version         the version answered
 * @property {number} latest_version
 * @property {string} project_id
 * @property {string} app_id
 * @property {string} project
 * @property {string} app
 * @property {string} name
 * @property {string} created_at
 * @property {string} created_by
 * @property {string} modified_at
 * @property {string} modified_by
 * @property {ThreadDef[]} threads
 * @property {import("./triggers.js").TriggerOut[]} triggers  the version's webhooks and schedules
 *
 * @typedef {object} ThreadDef
 * @property {string} key
 * @property {string} [name]
 * @property {{key: string, type: string, name?: string, params?: object, position?: {x: number, y: number}}[]} [elements]
 * @property {{source: string, target: string, source_port?: string}[]} [connections]
 */

export const KEY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;

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
  const port = raw.source_port;
  if (port && port !== "out") connection.source_port = String(port);
  return connection;
}

function cleanThread(raw) {
  return {
    key: String(raw.key),
    name: raw.name ? String(raw.name) : undefined,
    // The server leaves out what is empty (ThreadDef, omit_defaults).
    elements: (raw.elements ?? []).map(cleanElement),
    connections: (raw.connections ?? []).map(cleanConnection),
  };
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
    /** @type {import("./triggers.js").Trigger[]} the definition's triggers, as edited */
    this.triggers = [];
    /** @type {Map<string, import("./triggers.js").TriggerOut>} by key, as last saved or loaded */
    this.savedTriggers = new Map();
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

  /**
   * Build from `GET /api/v1/processes/{id}`. `known.latest` is the newest
   * version the page knew of before asking (the list, the document open).
   *
   * @param {ProcessOut} body
   * @param {{latest?: number}} [known]
   */
  static fromServer(body, known = {}) {
    const doc = new ProcessDoc();
    doc.id = body.process_id;
    doc.version = body.version;
    doc.latest = Math.max(body.latest_version, known.latest ?? 0);
    doc.project = body.project;
    doc.app = body.app;
    doc.name = body.name;
    doc.threads = body.threads.map(cleanThread);
    doc.triggers = body.triggers.map(cleanTrigger);
    doc.setSavedTriggers(body.triggers);
    if (!doc.threads.length)
      doc.threads = [
        { key: "main", name: "Main", elements: [], connections: [] },
      ];
    doc.audit = {
      created_at: body.created_at,
      created_by: body.created_by,
      modified_at: body.modified_at,
      modified_by: body.modified_by,
    };
    doc.projectId = body.project_id;
    doc.appId = body.app_id;
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

  /** Remember what the server answered for the triggers (their url, next_at). */
  setSavedTriggers(/** @type {import("./triggers.js").TriggerOut[]} */ list) {
    this.savedTriggers = new Map(list.map((t) => [t.key, t]));
  }

  trigger(key) {
    return this.triggers.find((t) => t.key === key) ?? null;
  }

  /** A trigger key not taken yet, from `base`. */
  newTriggerKey(base) {
    const taken = new Set(this.triggers.map((t) => t.key));
    if (!taken.has(base)) return base;
    for (let i = 1; ; i += 1)
      if (!taken.has(`${base}_${i}`)) return `${base}_${i}`;
  }

  addTrigger(/** @type {import("./triggers.js").Trigger} */ trigger) {
    this.triggers.push(trigger);
    this.changed({ trigger: trigger.key });
  }

  /** Replace the trigger now keyed `key` (its key may change). */
  setTrigger(key, /** @type {import("./triggers.js").Trigger} */ trigger) {
    const index = this.triggers.findIndex((t) => t.key === key);
    if (index < 0) return;
    this.triggers[index] = trigger;
    this.changed({ trigger: trigger.key });
  }

  removeTrigger(key) {
    this.triggers = this.triggers.filter((t) => t.key !== key);
    this.changed({ trigger: key });
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
      triggers: this.triggers.map(cleanTrigger),
    };
  }

  /** Give a position to every element that has none (layout.js); answers whether any moved. */
  layoutMissing() {
    return layoutMissing(this.threads);
  }
}
