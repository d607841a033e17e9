// Stepping through an opened execution: the state right after any one of its
// events. The Studio folds the events it holds (run.js) at once; where the
// server answers `GET …/state?at=`, its state then replaces the fold's node
// states a moment later.

import { api } from "./api.js";
import { foldEvents, fromStatus } from "./run.js";

/**
 * `GET /api/v1/executions/{id}/state?at=` (services/usecases/executions.py
 * StateOut, from domain/history/state_at.py). Only the fields read here:
 *
 * @typedef {object} StateNode
 * @property {"pending"|"running"|"completed"|"failed"|"skipped"|"cancelled"} state
 * @property {number} attempts
 * @property {*} output
 * @property {string|null} port
 * @property {string|null} error
 * @property {string|null} wake_at
 *
 * @typedef {object} StateDoc
 * @property {string} execution_id
 * @property {number} at      the seq of the event the state is after
 * @property {number} events  how many events the execution has
 * @property {"pending"|"running"|"completed"|"failed"|"cancelled"} status
 * @property {Object<string, StateNode>} nodes  keyed by element key
 * @property {*} output
 * @property {string|null} error
 */

/** @typedef {import("./history.js").HistoryPanel} HistoryPanel */

/** Learn once whether the server answers `…/state?at=`. */
export async function probeStateApi(panel, executionId, seq) {
  if (panel.stateApi !== undefined || !seq) return;
  try {
    await api(
      "GET",
      `/api/v1/executions/${encodeURIComponent(executionId)}/state?at=${seq}`,
    );
    panel.stateApi = true;
  } catch {
    panel.stateApi = false;
  }
  if (panel.selected?.id === executionId) panel._renderDetail();
}

/**
 * The fold `local` with the server's state at the same event: the server's
 * status and node states; what only the fold knows (when things started, the
 * input an element took, the port when the server has none) stays.
 */
function withServerState(local, /** @type {StateDoc} */ state) {
  const nodes = { ...local.nodes };
  for (const [key, node] of Object.entries(state.nodes)) {
    const mine = nodes[key] ?? {};
    const merged = {
      ...mine,
      state: node.state,
      attempts: node.attempts,
      output: node.output,
      error: node.error,
    };
    if (node.port !== null) merged.port = node.port;
    if (node.wake_at !== null) merged.wake_at = node.wake_at;
    nodes[key] = merged;
  }
  return {
    ...local,
    status: state.status,
    nodes,
    output: state.output,
    error: state.error,
    position: state.at,
  };
}

/** Show `panel`'s opened execution as it stood right after event `seq`. */
export function stepTo(panel, seq) {
  const sel = panel.selected;
  if (!sel?.events) return;
  sel.seq = seq;
  if (panel.slider && Number(panel.slider.value) !== seq)
    panel.slider.value = String(seq);
  panel._label();
  panel._renderTimeline();
  const local =
    seq >= sel.maxSeq && sel.status
      ? fromStatus(sel.status)
      : foldEvents(sel.events, seq, sel.id);
  sel.run = local;
  panel.emit("show", local);
  if (panel.stateApi && seq > 0 && seq < sel.maxSeq) {
    clearTimeout(panel.stateTimer);
    panel.stateTimer = setTimeout(async () => {
      try {
        /** @type {StateDoc} */
        const state = await api(
          "GET",
          `/api/v1/executions/${encodeURIComponent(sel.id)}/state?at=${seq}`,
        );
        if (panel.selected !== sel || sel.seq !== seq) return;
        const remote = withServerState(local, state);
        sel.run = remote;
        panel.emit("show", remote);
      } catch {
        /* the local fold stays */
      }
    }, 120);
  }
}
