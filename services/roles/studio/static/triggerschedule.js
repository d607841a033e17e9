// A schedule trigger's fields in the inspector's Triggers section: cron or
// interval, time zone (with a list of common zones), the input its executions
// get, what to do with missed ticks, and its next five ticks as the server
// computes them (GET /api/v1/schedules/next) while you type, with the
// server's reason inline when it would refuse the schedule at save.

import { jsonField } from "./jsonfield.js";
import { choice, triggerField } from "./triggerform.js";
import { CATCH_UPS, COMMON_ZONES, nextTicks, tickText } from "./triggers.js";
import { h } from "./util.js";

/** @typedef {import("./triggers.js").ScheduleTrigger} ScheduleTrigger */

const ZONES_ID = "trigger-zones";

/** The page's one datalist of time zones (the browser's own first). */
function zonesList() {
  let list = document.getElementById(ZONES_ID);
  if (!list) {
    const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const zones = [...new Set([own, ...COMMON_ZONES].filter(Boolean))];
    list = h(
      "datalist",
      { id: ZONES_ID },
      ...zones.map((z) => h("option", { value: z })),
    );
    document.body.append(list);
  }
  return list;
}

/** The next ticks, asked again (a moment after the last keystroke) on each change. */
function ticksBox() {
  const list = h("ol", { class: "trigger-ticks", "data-ticks": "" });
  const error = h("div", {
    class: "field-error",
    "data-ticks-error": "",
    role: "alert",
  });
  let timer = null;
  let asked = 0;
  const refresh = (/** @type {ScheduleTrigger} */ t) => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const ticket = ++asked;
      try {
        const ticks = await nextTicks(t, 5);
        if (ticket !== asked) return;
        error.textContent = "";
        list.replaceChildren(
          ...ticks.map((iso) =>
            h(
              "li",
              { "data-tick": iso, title: iso },
              tickText(iso, t.timezone),
            ),
          ),
        );
      } catch (err) {
        if (ticket !== asked) return;
        list.replaceChildren();
        error.textContent = err.message;
      }
    }, 250);
  };
  const box = h(
    "div",
    { class: "field" },
    h(
      "div",
      { class: "field-label" },
      h("span", { class: "field-name" }, "Next ticks"),
    ),
    list,
    error,
  );
  return { box, refresh };
}

/**
 * The fields of one schedule card.
 *
 * @param {ReturnType<typeof import("./triggerform.js").editor>} edit
 */
export function scheduleFields(edit) {
  const t0 = /** @type {ScheduleTrigger} */ (edit.get());
  const ticks = ticksBox();
  const set = (patch) => {
    edit.set(patch);
    ticks.refresh(/** @type {ScheduleTrigger} */ (edit.get()));
  };
  // What each mode last held, so switching back and forth loses nothing.
  let lastCron = t0.cron ?? "0 * * * *";
  let lastEvery = t0.every_s ?? 60;

  const cron = h("input", {
    type: "text",
    class: "mono",
    placeholder: "0 2 * * *",
    spellcheck: "false",
    autocomplete: "off",
    value: t0.cron ?? lastCron,
    onInput: () => {
      lastCron = cron.value;
      set({ cron: cron.value });
    },
  });
  const every = h("input", {
    type: "number",
    min: "1",
    step: "any",
    value: String(t0.every_s ?? lastEvery),
    onInput: () => {
      lastEvery = every.value === "" ? undefined : Number(every.value);
      set({ every_s: lastEvery });
    },
  });
  const cronField = triggerField(
    "Cron expression",
    cron,
    "Five fields: minute hour day-of-month month day-of-week.",
  );
  const everyField = triggerField("Every (s)", every, "At least 1 second.");
  const mode = t0.every_s !== undefined ? "interval" : "cron";
  const show = (m) => {
    cronField.hidden = m !== "cron";
    everyField.hidden = m !== "interval";
  };
  show(mode);
  const switchTo = (m) => {
    show(m);
    if (m === "cron") set({ cron: lastCron, every_s: undefined });
    else set({ every_s: lastEvery, cron: undefined });
  };
  const group = `mode-${Math.random().toString(36).slice(2)}`;
  const radio = (m, label) =>
    h(
      "label",
      { class: "trigger-mode" },
      h("input", {
        type: "radio",
        name: group,
        value: m,
        checked: mode === m,
        onChange: () => switchTo(m),
      }),
      label,
    );
  const modes = h(
    "div",
    { class: "field", role: "radiogroup", "aria-label": "Repeat by" },
    radio("cron", "Cron"),
    radio("interval", "Interval"),
  );

  zonesList();
  const zone = h("input", {
    type: "text",
    list: ZONES_ID,
    placeholder: "UTC",
    spellcheck: "false",
    autocomplete: "off",
    value: t0.timezone ?? "",
    onInput: () => set({ timezone: zone.value.trim() || undefined }),
  });

  ticks.refresh(t0);
  return [
    modes,
    cronField,
    everyField,
    triggerField("Time zone", zone, "An IANA name; UTC when empty."),
    jsonField(
      "input",
      t0.input,
      (value) => set({ input: value }),
      "What each execution gets as input, plus scheduled_at.",
    ),
    triggerField(
      "Catch up",
      choice(CATCH_UPS, t0.catch_up ?? "latest", (v) => set({ catch_up: v }), {
        latest: "latest: run once for the last missed tick",
        all: "all: run every missed tick (at most 100)",
        none: "none: skip missed ticks",
      }),
      "Ticks missed while no engine ran.",
    ),
    ticks.box,
  ];
}
