// The "Triggers" section of a trigger element's inspector: the process's
// webhooks and schedules, which start it without a token (contract "Triggers:
// webhooks and schedules"). Adding, editing and removing one changes the
// process document; the normal Save sends it. A saved webhook shows its full
// URL with a Copy button. The schedule's own fields and its next ticks are
// triggerschedule.js; the shapes and defaults are triggers.js; the small form
// pieces both use are triggerform.js.

import { secrets } from "./secrets.js";
import { choice, editor, triggerField } from "./triggerform.js";
import { scheduleFields } from "./triggerschedule.js";
import { hookUrl, METHODS, RESPONDS } from "./triggers.js";
import { h } from "./util.js";

/** @typedef {import("./inspector.js").Inspector} Inspector */
/** @typedef {import("./triggers.js").Trigger} Trigger */

/** domain/triggers.py TRIGGER_KEY */
const TRIGGER_KEY = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

function keyField(insp, edit, onRenamed) {
  const error = h("div", { class: "field-error" });
  const input = h("input", {
    type: "text",
    class: "mono",
    "data-trigger-field": "key",
    value: edit.get().key,
    spellcheck: "false",
    autocomplete: "off",
    onChange: () => {
      const next = input.value.trim();
      const key = edit.get().key;
      let problem = null;
      if (!TRIGGER_KEY.test(next))
        problem =
          "Keys are 1–64 letters, digits or _ . - (not starting with . -).";
      else if (next !== key && insp.doc.trigger(next))
        problem = `Another trigger already has the key “${next}”.`;
      input.classList.toggle("invalid", Boolean(problem));
      error.textContent = problem ?? "";
      if (problem || next === key) return;
      edit.set({ key: next });
      onRenamed(next);
    },
  });
  const field = triggerField(
    "Key",
    input,
    "Unique among the process's triggers.",
  );
  field.append(error);
  return field;
}

/** The saved webhook's full URL and a Copy button, or why there is none yet. */
function fillUrl(box, insp, key) {
  const saved = insp.doc.savedTriggers.get(key);
  if (!saved?.url) {
    box.replaceChildren(
      h(
        "div",
        { class: "field-hint", "data-hook-url-pending": "" },
        "Save the process to get this webhook's URL.",
      ),
    );
    return;
  }
  const url = hookUrl(saved.url);
  const status = h("span", { class: "field-hint", role: "status" });
  const input = h("input", {
    type: "text",
    class: "mono",
    readonly: true,
    "data-hook-url": "",
    value: url,
  });
  const copy = h(
    "button",
    {
      type: "button",
      class: "btn small",
      onClick: async () => {
        try {
          await navigator.clipboard.writeText(url);
        } catch {
          input.select();
          document.execCommand("copy");
        }
        status.textContent = "Copied.";
      },
    },
    "Copy",
  );
  box.replaceChildren(
    triggerField(
      "URL",
      input,
      "Anyone with it can start the process: keep it like a password.",
    ),
    h("div", { class: "trigger-copy" }, copy, status),
  );
}

function secretChoice(edit) {
  const select = h("select", {
    onChange: () => edit.set({ secret: select.value || undefined }),
  });
  const fill = () => {
    const current = edit.get().secret ?? "";
    const names = secrets.names;
    const options = [h("option", { value: "" }, "None: calls are not signed")];
    for (const name of names) options.push(h("option", { value: name }, name));
    if (current && !names.includes(current))
      options.push(h("option", { value: current }, `${current} (not found)`));
    select.replaceChildren(...options);
    select.value = current;
  };
  const off = secrets.on("change", () => {
    if (select.isConnected) fill();
    else off();
  });
  fill();
  if (!secrets.loaded) secrets.refresh();
  return select;
}

function webhookFields(insp, edit, urlBox) {
  const t = /** @type {import("./triggers.js").WebhookTrigger} */ (edit.get());
  const timeout = h("input", {
    type: "number",
    min: "0",
    step: "any",
    placeholder: "30",
    value: t.timeout_s ?? "",
    onInput: () =>
      edit.set({
        timeout_s: timeout.value === "" ? undefined : Number(timeout.value),
      }),
  });
  return [
    triggerField(
      "Method",
      choice(METHODS, t.method ?? "POST", (v) => edit.set({ method: v })),
    ),
    triggerField(
      "Respond",
      choice(
        RESPONDS,
        t.respond ?? "accepted",
        (v) => edit.set({ respond: v }),
        {
          accepted: "accepted: 202 at once",
          output: "output: wait for the output",
        },
      ),
    ),
    triggerField(
      "Timeout (s)",
      timeout,
      "How long “output” waits before answering 202.",
    ),
    triggerField(
      "Signing secret",
      secretChoice(edit),
      "Calls must carry X-Loom-Signature: sha256=<HMAC of the body>.",
    ),
    urlBox,
  ];
}

function card(insp, trigger, rerender) {
  const edit = editor(insp, trigger);
  const urlBox = h("div", { class: "trigger-url" });
  const title = h("strong", { class: "mono" }, trigger.key);
  const root = h("div", {
    class: "trigger-card",
    "data-trigger": trigger.key,
    "data-trigger-type": trigger.type,
  });
  const onRenamed = (key) => {
    root.dataset.trigger = key;
    title.textContent = key;
    if (trigger.type === "webhook") fillUrl(urlBox, insp, key);
  };
  const error = insp.errors.get(trigger.key);
  const parts = [
    h(
      "div",
      { class: "trigger-head" },
      h("span", { class: "tag" }, trigger.type),
      title,
      h(
        "button",
        {
          type: "button",
          class: "btn small ghost",
          "aria-label": `Remove trigger ${trigger.key}`,
          onClick: () => {
            insp.doc.removeTrigger(edit.get().key);
            rerender();
          },
        },
        "Remove",
      ),
    ),
    error
      ? h(
          "div",
          { class: "insp-error", "data-error-for": trigger.key, role: "alert" },
          h("strong", {}, "Refused:"),
          h("span", {}, error),
        )
      : null,
    keyField(insp, edit, onRenamed),
    ...(trigger.type === "webhook"
      ? webhookFields(insp, edit, urlBox)
      : scheduleFields(edit)),
  ];
  root.append(...parts.filter(Boolean));
  if (trigger.type === "webhook") fillUrl(urlBox, insp, trigger.key);
  return root;
}

/** @param {Inspector} insp */
export function triggersSection(insp) {
  const section = h("div", {
    class: "insp-section",
    "data-section": "triggers",
  });
  const render = () => {
    const doc = insp.doc;
    const add = (type) => {
      /** @type {Trigger} */
      const trigger =
        type === "webhook"
          ? { key: doc.newTriggerKey("webhook"), type, method: "POST" }
          : {
              key: doc.newTriggerKey("schedule"),
              type,
              cron: "0 * * * *",
              timezone: "UTC",
            };
      doc.addTrigger(trigger);
      render();
      section
        .querySelector(`[data-trigger="${CSS.escape(trigger.key)}"] input`)
        ?.focus();
    };
    section.replaceChildren(
      h("h3", {}, "Triggers"),
      h(
        "p",
        { class: "field-help" },
        "Webhooks and schedules start this process without a token; saved with the process.",
      ),
      ...(doc.triggers.length
        ? doc.triggers.map((t) => card(insp, t, render))
        : [h("div", { class: "empty-note" }, "No webhooks or schedules yet.")]),
      h(
        "div",
        { class: "trigger-add" },
        h(
          "button",
          { type: "button", class: "btn small", onClick: () => add("webhook") },
          "Add webhook",
        ),
        h(
          "button",
          {
            type: "button",
            class: "btn small",
            onClick: () => add("schedule"),
          },
          "Add schedule",
        ),
      ),
    );
  };
  render();
  return section;
}
