// An execution as the Studio sees it: a fold of the status snapshot and the
// events after it, and a watcher that keeps it current over the WebSocket,
// falling back to polling `/status` while the socket is down.

/**
 * The shapes the server sends (projections/status.py, services/roles/gateway/websocket.py,
 * services/usecases/executions.py; /work/shared/contract.md).
 *
 * @typedef {object} NodeStatus  one element in a status document
 * @property {"pending"|"running"|"waiting"|"completed"|"failed"|"skipped"|"cancelled"} state
 * @property {*} output
 * @property {string|null} error
 * @property {number} attempts
 * @property {string|null} started_at
 * @property {string|null} completed_at
 * @property {string} [port]      once completed
 * @property {string} [retry_at]  while a failed attempt waits to be retried
 * @property {string} [wake_at]   while a waiting element sleeps
 *
 * @typedef {object} StatusDoc  `GET /executions/{id}/status`, and the snapshot's `status`
 * @property {string} execution_id
 * @property {string|null} process_id
 * @property {number|null} version
 * @property {"pending"|"running"|"completed"|"failed"|"cancelled"} status
 * @property {Object<string, NodeStatus>} nodes  keyed by element key
 * @property {*} output
 * @property {string|null} error
 * @property {number} position  seq of the last event folded in
 * @property {string|null} started_at
 * @property {string|null} finished_at
 * @property {string|null} started_by
 * @property {string|null} rerun_of
 * @property {import("./triggers.js").ExecutionTrigger} [trigger]  what started it; absent on very old executions
 *
 * @typedef {object} EventMessage  a WebSocket event, and a row of `GET …/events` (which adds `actor`)
 * @property {string} type        the event's class name, e.g. "NodeCompleted"
 * @property {string|null} element  the element it concerns, null for execution events
 * @property {number} seq
 * @property {string} at
 * @property {object} data        the event's own fields (element, attempt, output, port, error, retry_at, …)
 *
 * @typedef {{type: "snapshot", status: StatusDoc}} SnapshotMessage  the socket's first message
 */

import { api, ApiError, wsUrl } from "./api.js";
import { Emitter } from "./util.js";

export const TERMINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);
export const TERMINAL_EVENTS = new Set([
  "ExecutionCompleted",
  "ExecutionFailed",
  "ExecutionCancelled",
]);

/** A run from a status document (`GET …/status` or the WebSocket snapshot). */
export function fromStatus(status) {
  return {
    execution_id: status.execution_id,
    process_id: status.process_id,
    version: status.version,
    status: status.status,
    nodes: Object.fromEntries(
      Object.entries(status.nodes).map(([key, node]) => [key, { ...node }]),
    ),
    output: status.output,
    error: status.error,
    position: status.position,
    started_at: status.started_at,
    // The Studio calls the server's `finished_at` `completed_at`, as for nodes.
    completed_at: status.finished_at,
    rerun_of: status.rerun_of,
  };
}

export function emptyRun(executionId) {
  return {
    execution_id: executionId,
    process_id: null,
    version: null,
    status: "pending",
    nodes: {},
    output: null,
    error: null,
    position: 0,
    started_at: null,
    completed_at: null,
    rerun_of: null,
  };
}

/** The element an event concerns (null for the execution's own events). */
export function elementOf(event) {
  return event.element;
}

/** Fold one event into `run` (mutating it). Answers true if it changed anything. */
export function applyEvent(run, event) {
  const data = event.data;
  const key = event.element;
  const at = event.at;
  const node = () => {
    if (!run.nodes[key]) run.nodes[key] = { state: "pending" };
    return run.nodes[key];
  };
  switch (event.type) {
    case "ExecutionStarted":
      run.status = "running";
      // A snapshot may already have told when it started.
      run.started_at = run.started_at ?? at;
      run.process_id = data.process_id;
      run.version = data.version;
      // Optional: null unless this execution reruns another.
      if (data.rerun_of) run.rerun_of = data.rerun_of;
      break;
    case "NodeExecuting": {
      const n = node();
      n.state = "running";
      n.attempts = data.attempt;
      n.input = data.input;
      // The first attempt's start, as the status projection keeps it.
      n.started_at = n.started_at ?? at;
      if (run.status === "pending") run.status = "running";
      break;
    }
    case "NodeCompleted": {
      const n = node();
      n.state = "completed";
      n.output = data.output;
      n.port = data.port;
      n.attempts = data.attempt;
      n.completed_at = at;
      n.error = null;
      break;
    }
    case "NodeFailed": {
      const n = node();
      n.error = data.error;
      n.attempts = data.attempt;
      // Optional: `retry_at` is null when the element will not be tried again.
      if (data.retry_at !== null) {
        n.state = "running";
        n.retry_at = data.retry_at;
      } else {
        n.state = "failed";
        n.completed_at = at;
      }
      break;
    }
    case "NodeSkipped":
      node().state = "skipped";
      break;
    case "NodeWaiting": {
      // A `signal` element waiting, until `timeout_at` if it has one.
      const n = node();
      n.state = "waiting";
      n.attempts = data.attempt;
      n.started_at = n.started_at ?? at;
      if (data.timeout_at) n.timeout_at = data.timeout_at;
      break;
    }
    case "ExecutionCompleted":
      run.status = "completed";
      run.output = data.output;
      run.completed_at = at;
      break;
    case "ExecutionFailed":
      run.status = "failed";
      run.error = data.error;
      run.completed_at = at;
      break;
    case "ExecutionCancelled":
      run.status = "cancelled";
      run.completed_at = at;
      for (const n of Object.values(run.nodes))
        if (n.state === "running" || n.state === "waiting")
          n.state = "cancelled";
      break;
    default:
      run.position = Math.max(run.position, event.seq);
      return false;
  }
  run.position = Math.max(run.position, event.seq);
  return true;
}

/** Fold audit rows (`GET …/events`) up to and including `seq`. */
export function foldEvents(events, uptoSeq = Infinity, executionId = null) {
  const run = emptyRun(executionId);
  for (const event of events) {
    if (Number(event.seq) > uptoSeq) break;
    applyEvent(run, event);
  }
  return run;
}

/**
 * Keeps one execution's run current. Emits:
 *  - "update" (run) whenever the state changes,
 *  - "event" (message) for every event applied from the socket,
 *  - "mode" ("connecting" | "live" | "polling" | "done" | "error"),
 *  - "problem" (text) when it cannot go on.
 */
export class ExecutionWatcher extends Emitter {
  constructor(executionId, { pollMs = 1000, snapshotTimeoutMs = 3000 } = {}) {
    super();
    this.id = executionId;
    this.run = emptyRun(executionId);
    this.mode = "idle";
    this.pollMs = pollMs;
    this.snapshotTimeoutMs = snapshotTimeoutMs;
    this.ws = null;
    this.pollTimer = null;
    this.reconnectTimer = null;
    this.snapshotTimer = null;
    this.reconnectAttempt = 0;
    this.stopped = false;
    this.polling = false;
  }

  get finished() {
    return TERMINAL_STATUSES.has(this.run.status);
  }

  start() {
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    this._clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
  }

  _setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    this.emit("mode", mode);
  }

  _clearTimers() {
    clearInterval(this.pollTimer);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.snapshotTimer);
    this.pollTimer = null;
    this.reconnectTimer = null;
    this.snapshotTimer = null;
  }

  connect() {
    if (this.stopped || this.finished) return;
    if (this.mode !== "polling") this._setMode("connecting");
    let ws;
    try {
      ws = new WebSocket(
        wsUrl(`/ws/executions/${encodeURIComponent(this.id)}`),
      );
    } catch {
      this._lost(null);
      return;
    }
    this.ws = ws;
    let gotSnapshot = false;
    // A socket that opens but sends no snapshot is as good as none: poll meanwhile.
    clearTimeout(this.snapshotTimer);
    this.snapshotTimer = setTimeout(() => {
      if (!gotSnapshot && this.ws === ws && !this.finished)
        this._startPolling();
    }, this.snapshotTimeoutMs);
    ws.onmessage = (message) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(message.data);
      } catch {
        return;
      }
      if (msg.type === "snapshot") {
        gotSnapshot = true;
        clearTimeout(this.snapshotTimer);
        this.reconnectAttempt = 0;
        this._stopPolling();
        this._applySnapshot(msg.status);
        if (!this.finished) this._setMode("live");
      } else {
        this._applyMessage(msg);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.snapshotTimer);
      this._lost(event);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
  }

  _lost(event) {
    if (this.stopped) return;
    if (this.finished) {
      this._finish();
      return;
    }
    // null when the socket could not even be opened (no close event).
    const code = event?.code;
    if (code === 4404) {
      this._setMode("error");
      this.emit(
        "problem",
        "This execution was not found (or belongs to another tenant).",
      );
      this._clearTimers();
      return;
    }
    // 4401 (token) or a network drop: the status endpoint may still answer, so poll.
    this._startPolling();
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    clearTimeout(this.reconnectTimer);
    const delay = Math.min(1000 * 2 ** this.reconnectAttempt, 8000);
    this.reconnectAttempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  _startPolling() {
    this._setMode("polling");
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => this.poll(), this.pollMs);
    this.poll();
  }

  _stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  async poll() {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const status = await api(
        "GET",
        `/api/v1/executions/${encodeURIComponent(this.id)}/status`,
      );
      if (!this.stopped) this._applySnapshot(status);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        this._clearTimers();
        this._setMode("error");
        this.emit(
          "problem",
          "This execution was not found (or belongs to another tenant).",
        );
      }
    } finally {
      this.polling = false;
    }
  }

  /** A status document replaces the state unless it is older than what we have. */
  _applySnapshot(status) {
    const next = fromStatus(status);
    if (next.position < this.run.position) return;
    // The read model may not carry what only events say (the port taken, the input).
    for (const [key, node] of Object.entries(next.nodes)) {
      const old = this.run.nodes[key];
      if (!old) continue;
      if (node.port === undefined && old.port !== undefined)
        node.port = old.port;
      if (node.input === undefined && old.input !== undefined)
        node.input = old.input;
    }
    this.run = next;
    this.emit("update", this.run);
    if (this.finished) this._finish();
  }

  _applyMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    const seq = Number(msg.seq);
    if (Number.isFinite(seq) && seq <= this.run.position) return; // already folded in
    const gap =
      Number.isFinite(seq) &&
      this.run.position > 0 &&
      seq > this.run.position + 1;
    applyEvent(this.run, msg);
    this.emit("event", msg);
    this.emit("update", this.run);
    if (gap) this.poll();
    if (TERMINAL_EVENTS.has(msg.type) || this.finished) this._finish();
  }

  _finish() {
    this._clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
    this._setMode("done");
    this.emit("update", this.run);
  }
}
