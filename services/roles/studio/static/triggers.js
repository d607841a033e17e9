// A process's triggers as the Studio keeps them: the definition's
// `triggers` (webhooks and schedules, contract "Triggers: webhooks and
// schedules"), what the server adds once saved (a webhook's url, a schedule's
// next tick), the next ticks of a schedule as it is typed, and the words that
// say how an execution was started. The inspector's Triggers section
// (inspector-triggers.js) edits them; the History list (history.js) names
// what started each execution.

import { api } from "./api.js";

/**
 * A trigger as the definition holds it (domain/triggers.py WebhookTrigger and
 * ScheduleTrigger); what is left out takes the server's default.
 *
 * @typedef {object} WebhookTrigger
 * @property {string} key
 * @property {"webhook"} type
 * @property {"GET"|"POST"|"PUT"|"PATCH"|"DELETE"} [method]  default POST
 * @property {"accepted"|"output"} [respond]  default accepted
 * @property {number} [timeout_s]  how long `respond: "output"` waits; default 30
 * @property {string} [secret]  a tenant secret's name: calls must be signed with it
 *
 * @typedef {object} ScheduleTrigger
 * @property {string} key
 * @property {"schedule"} type
 * @property {string} [cron]  five fields; exactly one of cron and every_s
 * @property {number} [every_s]  at least 1
 * @property {string} [timezone]  default UTC
 * @property {object} [input]  the execution's input, plus "scheduled_at"
 * @property {"latest"|"all"|"none"} [catch_up]  default latest
 *
 * @typedef {WebhookTrigger|ScheduleTrigger} Trigger
 *
 * A trigger as the save answer and GET /api/v1/processes/{id} list it
 * (services/roles/api/schemas.py TriggerOut, defaults left out):
 *
 * @typedef {Trigger & {url?: string, next_at?: string}} TriggerOut
 *   `url` is a webhook's path `/hooks/<token>`; `next_at` a schedule's next tick (ISO 8601)
 *
 * What `GET /api/v1/schedules/next` answers (ScheduleTicksOut):
 *
 * @typedef {object} ScheduleTicksOut
 * @property {string[]} next  ISO 8601 ticks, soonest first
 *
 * What started an execution, on every status and listed execution
 * (projections/status.py ExecutionTrigger); absent on very old executions:
 *
 * @typedef {object} ExecutionTrigger
 * @property {"api"|"webhook"|"schedule"|"rerun"|"parent"} type
 * @property {string} [key]  the webhook's or schedule's key
 * @property {string} [at]   a schedule's tick (ISO 8601)
 */

export const METHODS = ["POST", "GET", "PUT", "PATCH", "DELETE"];
export const RESPONDS = ["accepted", "output"];
export const CATCH_UPS = ["latest", "all", "none"];

/** Zones offered as you type a time zone (any IANA name is accepted). */
export const COMMON_ZONES = [
  "UTC",
  "Europe/London",
  "Europe/Paris",
  "Europe/Berlin",
  "Europe/Madrid",
  "Europe/Rome",
  "Europe/Amsterdam",
  "Europe/Moscow",
  "America/New_York",
  "America/Chicago",
  "America/Denver",
  "America/Los_Angeles",
  "America/Toronto",
  "America/Mexico_City",
  "America/Sao_Paulo",
  "Asia/Tokyo",
  "Asia/Shanghai",
  "Asia/Singapore",
  "Asia/Kolkata",
  "Asia/Dubai",
  "Australia/Sydney",
  "Pacific/Auckland",
  "Africa/Johannesburg",
  "Africa/Lagos",
];

const WEBHOOK_FIELDS = ["method", "respond", "timeout_s", "secret"];
const SCHEDULE_FIELDS = ["cron", "every_s", "timezone", "input", "catch_up"];

/**
 * The definition's form of a trigger: the fields of its type that are set
 * (what the server added, `url` and `next_at`, left out).
 *
 * @param {TriggerOut|Trigger} raw
 * @returns {Trigger}
 */
export function cleanTrigger(raw) {
  const trigger = { key: String(raw.key), type: raw.type };
  const fields = raw.type === "webhook" ? WEBHOOK_FIELDS : SCHEDULE_FIELDS;
  for (const field of fields) {
    const value = raw[field];
    if (value === undefined || value === null || value === "") continue;
    trigger[field] = structuredClone(value);
  }
  return /** @type {Trigger} */ (trigger);
}

/** A webhook's full address, from the path the server answers. */
export function hookUrl(/** @type {string} */ path) {
  return new URL(path, location.origin).href;
}

/**
 * The next `count` ticks of a schedule, checked as a save would check it.
 * Rejects with ApiError (422 with the server's `detail` for a bad schedule).
 *
 * @param {{cron?: string, every_s?: number, timezone?: string}} schedule
 * @returns {Promise<string[]>}
 */
export async function nextTicks(schedule, count = 5) {
  const params = new URLSearchParams({ count: String(count) });
  if (schedule.cron !== undefined) params.set("cron", schedule.cron);
  if (schedule.every_s !== undefined)
    params.set("every_s", String(schedule.every_s));
  if (schedule.timezone) params.set("timezone", schedule.timezone);
  /** @type {ScheduleTicksOut} */
  const body = await api("GET", `/api/v1/schedules/next?${params}`);
  return body.next;
}

/** A tick as a person reads it, in the schedule's own zone when it has a valid one. */
export function tickText(/** @type {string} */ iso, timezone = "UTC") {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const options = {
    weekday: "short",
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZoneName: "short",
  };
  try {
    return t.toLocaleString(undefined, { ...options, timeZone: timezone });
  } catch {
    return t.toLocaleString(undefined, options);
  }
}

/**
 * How an execution was started, in a few words: "API", "webhook orders",
 * "schedule nightly at …", "re-run", "sub-process"; "" when not recorded.
 *
 * @param {ExecutionTrigger|undefined} trigger
 */
export function startedHow(trigger) {
  if (!trigger) return "";
  switch (trigger.type) {
    case "api":
      return "API";
    case "webhook":
      return `webhook ${trigger.key}`;
    case "schedule":
      return trigger.at
        ? `schedule ${trigger.key} at ${new Date(trigger.at).toLocaleString()}`
        : `schedule ${trigger.key}`;
    case "rerun":
      return "re-run";
    case "parent":
      return "sub-process";
    default:
      return String(trigger.type);
  }
}
