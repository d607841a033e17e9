// The Studio's only door to Loom: the token it holds and the REST calls it makes.
//
// The token comes from `#token=…` (then leaves the address bar) or from the
// token dialog, lives in sessionStorage, and travels only in the Authorization
// header; the execution WebSocket is the one place it goes in a URL, because
// browsers cannot set headers on a WebSocket and the contract asks for `?token=`.

import { Emitter } from "./util.js";

const STORAGE_KEY = "loom.studio.token";

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function decodeSegment(segment) {
  const base64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "===".slice((base64.length + 3) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** The claims of a JWT, read without verifying it (the server verifies). */
export function readClaims(token) {
  if (!token || typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length < 2) return null;
  try {
    const claims = decodeSegment(parts[1]);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

class Auth extends Emitter {
  constructor() {
    super();
    this.token = null;
    this.claims = null;
  }

  load() {
    let stored = null;
    try {
      stored = sessionStorage.getItem(STORAGE_KEY);
    } catch {
      stored = null;
    }
    if (stored) this._assign(stored);
  }

  set(token) {
    const value = (token || "").trim().replace(/^Bearer\s+/i, "");
    if (!value) return false;
    this._assign(value);
    try {
      sessionStorage.setItem(STORAGE_KEY, value);
    } catch {
      /* storage may be disabled: keep it in memory */
    }
    this.emit("change", this);
    return true;
  }

  clear() {
    this.token = null;
    this.claims = null;
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      /* ignore */
    }
    this.emit("change", this);
  }

  _assign(token) {
    this.token = token;
    this.claims = readClaims(token);
  }

  get tenant() {
    return this.claims?.tenant_id ?? null;
  }

  get subject() {
    return this.claims?.sub ?? null;
  }

  get expired() {
    const exp = this.claims?.exp;
    return typeof exp === "number" && exp * 1000 < Date.now();
  }
}

export const auth = new Auth();

/** Take `token` out of the address bar's hash, keep the rest (e.g. `process=`). */
export function takeTokenFromHash() {
  const raw = location.hash.replace(/^#/, "");
  if (!raw) return null;
  const params = new URLSearchParams(raw);
  const token = params.get("token");
  if (!token) return null;
  params.delete("token");
  const rest = params.toString();
  const url = `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`;
  history.replaceState(history.state, "", url);
  return token;
}

/**
 * What an error answer says: Loom's `{"detail": …}` (every error, see
 * services/roles/api/errors.py), or the text of something else that answered
 * (a proxy's page).
 */
function detailOf(body, status) {
  const detail = body && typeof body === "object" ? body.detail : null;
  if (typeof detail === "string" && detail) return detail;
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 300);
  return `HTTP ${status}`;
}

/**
 * Call the REST API. Resolves with the decoded JSON (or null), rejects with
 * ApiError carrying status and body. A 401 also tells whoever listens on
 * `auth` ("unauthorized") so the page can ask for a new token.
 */
export async function api(
  method,
  path,
  body,
  { headers = {}, quiet401 = false } = {},
) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (auth.token) init.headers.Authorization = `Bearer ${auth.token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, null, `Cannot reach Loom (${err.message || err})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !quiet401)
      auth.emit("unauthorized", detailOf(data, 401));
    throw new ApiError(response.status, data, detailOf(data, response.status));
  }
  return data;
}

export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const sep = path.includes("?") ? "&" : "?";
  return `${scheme}//${location.host}${path}${sep}token=${encodeURIComponent(auth.token || "")}`;
}
