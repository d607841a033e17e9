// Element type looks (colour + line icon) and state badges, all inline SVG.

import { s, svgFragment } from "./util.js";

// 24×24 stroke icons (feather-like), drawn with currentColor.
const PATHS = {
  trigger: '<path d="M13 2 3 14h9l-1 8 10-12h-9l1-8z"/>',
  transform:
    '<path d="M8 3H7a2 2 0 0 0-2 2v5a2 2 0 0 1-2 2 2 2 0 0 1 2 2v5c0 1.1.9 2 2 2h1"/><path d="M16 21h1a2 2 0 0 0 2-2v-5c0-1.1.9-2 2-2a2 2 0 0 1-2-2V5a2 2 0 0 0-2-2h-1"/>',
  condition:
    '<path d="M12 2.5 21.5 12 12 21.5 2.5 12z"/><path d="M9.5 10a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .9-1 1.5v.2"/><path d="M12 17h.01"/>',
  join: '<circle cx="6" cy="5" r="2.2"/><circle cx="6" cy="19" r="2.2"/><circle cx="19" cy="12" r="2.2"/><path d="M8 6.2c4 1.5 5 5.8 8.8 5.8M8 17.8c4-1.5 5-5.8 8.8-5.8"/>',
  delay: '<circle cx="12" cy="13" r="8"/><path d="M12 9v4l2.5 2.5M9.5 2h5"/>',
  http: '<circle cx="12" cy="12" r="9.5"/><path d="M2.5 12h19M12 2.5c2.6 2.7 3.9 5.9 3.9 9.5s-1.3 6.8-3.9 9.5c-2.6-2.7-3.9-5.9-3.9-9.5S9.4 5.2 12 2.5z"/>',
  agent:
    '<path d="M12 3l1.8 5.2L19 10l-5.2 1.8L12 17l-1.8-5.2L5 10l5.2-1.8z"/><path d="M19 15.5l.8 2.2 2.2.8-2.2.8-.8 2.2-.8-2.2-2.2-.8 2.2-.8z"/>',
  signal:
    '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="m3.5 6 8.5 7 8.5-7"/>',
  end: '<path d="M5 21V4"/><path d="M5 4h11l-2 4 2 4H5"/>',
  fail: '<path d="M7.9 2h8.2L22 7.9v8.2L16.1 22H7.9L2 16.1V7.9z"/><path d="m15 9-6 6M9 9l6 6"/>',
  unknown:
    '<rect x="4" y="4" width="16" height="16" rx="3"/><path d="M9.5 10a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .9-1 1.5v.2M12 17h.01"/>',
};

const COLORS = {
  trigger: "#f59e0b",
  transform: "#3b82f6",
  condition: "#8b5cf6",
  join: "#14b8a6",
  delay: "#64748b",
  http: "#0ea5e9",
  agent: "#db2777",
  signal: "#4f46e5",
  end: "#10b981",
  fail: "#ef4444",
};

const FALLBACK_COLORS = [
  "#6366f1",
  "#0891b2",
  "#ca8a04",
  "#9333ea",
  "#059669",
  "#dc2626",
];

export function typeColor(type) {
  if (COLORS[type]) return COLORS[type];
  let hash = 0;
  for (const ch of String(type)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return FALLBACK_COLORS[hash % FALLBACK_COLORS.length];
}

/** An <svg> icon for an element type, sized `size` px, stroke currentColor. */
export function typeIcon(type, size = 18) {
  const icon = s("svg", {
    viewBox: "0 0 24 24",
    width: size,
    height: size,
    fill: "none",
    stroke: "currentColor",
    "stroke-width": 2,
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
    "aria-hidden": "true",
    class: "type-icon",
  });
  icon.append(...svgFragment(PATHS[type] || PATHS.unknown));
  return icon;
}

/** The same icon as a <g> to place inside the canvas at (x, y). */
export function typeIconGroup(type, x, y, size) {
  const scale = size / 24;
  const group = s("g", {
    transform: `translate(${x} ${y}) scale(${scale})`,
    fill: "none",
    stroke: "currentColor",
    "stroke-width": 2.1,
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
    class: "node-icon",
  });
  group.append(...svgFragment(PATHS[type] || PATHS.unknown));
  return group;
}

// State badges: the glyph (for text and screen readers) and its drawing.
export const STATE_GLYPH = {
  pending: "•",
  running: "⏳",
  waiting: "✉",
  completed: "✓",
  failed: "✗",
  skipped: "⤼",
  cancelled: "⊘",
};

const BADGE_PATHS = {
  pending: '<circle cx="0" cy="0" r="2.6" fill="currentColor" stroke="none"/>',
  running: '<path d="M0 -5.2a5.2 5.2 0 1 1 -5.2 5.2" class="spin"/>',
  waiting:
    '<rect x="-4.6" y="-3.4" width="9.2" height="6.8" rx="1"/><path d="M-4.6 -3 0 0.6 4.6 -3"/>',
  completed: '<path d="M-4.2 0.2 -1.3 3.1 4.4 -3"/>',
  failed: '<path d="M-3.4 -3.4 3.4 3.4M3.4 -3.4 -3.4 3.4"/>',
  skipped:
    '<path d="M-4.5 3.5V0a3.6 3.6 0 0 1 7.2 0v1.6"/><path d="M0.6 0.2 2.7 2.4 4.8 0.2"/>',
  cancelled: '<circle cx="0" cy="0" r="4.4"/><path d="M-3 3 3 -3"/>',
};

/** A badge <g> centred at (x, y) for a node state. */
export function badgeGroup(state, x, y) {
  const group = s("g", {
    class: `badge badge-${state}`,
    transform: `translate(${x} ${y})`,
    "data-badge": state,
    role: "img",
    "aria-label": `${state} ${STATE_GLYPH[state] || ""}`.trim(),
  });
  group.append(s("title", {}, `${STATE_GLYPH[state] || ""} ${state}`.trim()));
  group.append(s("circle", { class: "badge-bg", r: 10.5 }));
  const glyph = s("g", {
    class: "badge-glyph",
    fill: "none",
    stroke: "currentColor",
    "stroke-width": 2,
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
  });
  glyph.append(...svgFragment(BADGE_PATHS[state] || BADGE_PATHS.pending));
  group.append(glyph);
  return group;
}

/** A small HTML pill for a node or execution state (glyph drawn, not a font character). */
export function statePill(state) {
  const span = document.createElement("span");
  span.className = `pill pill-${state || "unknown"}`;
  span.dataset.state = state || "unknown";
  span.title = `${STATE_GLYPH[state] || ""} ${state || "unknown"}`.trim();
  if (BADGE_PATHS[state] && state !== "pending") {
    const glyph = s("svg", {
      viewBox: "-7 -7 14 14",
      width: 12,
      height: 12,
      fill: "none",
      stroke: "currentColor",
      "stroke-width": 2,
      "stroke-linecap": "round",
      "stroke-linejoin": "round",
      class: `pill-glyph glyph-${state}`,
      "aria-hidden": "true",
    });
    glyph.append(...svgFragment(BADGE_PATHS[state]));
    span.append(glyph);
  }
  span.append(document.createTextNode(state || "unknown"));
  return span;
}

export function logoSvg(size = 22) {
  const logo = s("svg", {
    viewBox: "0 0 32 32",
    width: size,
    height: size,
    "aria-hidden": "true",
  });
  logo.append(
    ...svgFragment(
      '<rect x="1" y="1" width="30" height="30" rx="8" fill="#6366f1"/>' +
        '<path d="M8 10c5 0 5 12 10 12s4-12 6-12" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round"/>' +
        '<path d="M8 22c5 0 5-12 10-12" fill="none" stroke="#c7d2fe" stroke-width="2.6" stroke-linecap="round"/>' +
        '<circle cx="8" cy="10" r="2" fill="#fff"/><circle cx="24" cy="10" r="2" fill="#fff"/>',
    ),
  );
  return logo;
}
