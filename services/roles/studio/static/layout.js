// Where elements go that have no position yet (a process made elsewhere, by
// the API or the CLI): in columns by distance from the thread's trigger, in
// rows in the order they come.

/**
 * Give a position to every element that has none, thread by thread. Answers
 * whether it placed any.
 *
 * @param {{elements: {key: string, type: string, position?: {x: number, y: number}}[], connections: {source: string, target: string}[]}[]} threads
 */
export function layoutMissing(threads) {
  let placedAny = false;
  for (const thread of threads) {
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
