// The Studio's shared state: the open document and run, and the one instance of each pane.

import { Canvas } from "./canvas.js";
import { Inspector } from "./inspector.js";
import { Catalog } from "./catalog.js";
import { Navigator } from "./navigator.js";
import { HistoryPanel } from "./history.js";
import { RunPanel } from "./runpanel.js";

export const $ = (id) => document.getElementById(id);

export const app = {
  catalog: new Catalog([]),
  doc: null,
  notFound: null,
  watcher: null,
  liveRun: null,
  tab: "run",
  booted: false,
  saving: false,
  errors: new Map(),
};

export const canvas = new Canvas($("canvas-wrap"));
export const inspector = new Inspector($("inspector"));
export const navigator_ = new Navigator($("navigator"));
export const runPanel = new RunPanel();
export const history_ = new HistoryPanel();
