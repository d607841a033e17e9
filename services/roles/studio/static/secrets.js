// The tenant's secrets as the Studio knows them: names and who changed them
// when, from /api/v1/secrets. Values only ever go out (in a POST or PUT body)
// and are never kept here; the server never sends them back.
//
// The Secrets page (secretspage.js) changes them; the inspector's "Insert
// secret" menus (secretinsert.js) read the names and hear when they change.

import { api } from "./api.js";
import { Emitter } from "./util.js";

/**
 * A secret as GET/POST/PUT /api/v1/secrets answer it (SecretOut in
 * services/usecases/secrets.py): never its value.
 *
 * @typedef {object} SecretOut
 * @property {string} name         matches [A-Z][A-Z0-9_]{0,63}
 * @property {string} created_at   ISO 8601
 * @property {string} created_by   the token's subject
 * @property {string} modified_at  ISO 8601
 * @property {string} modified_by  the token's subject
 */

const BASE = "/api/v1/secrets";

const path = (name) => `${BASE}/${encodeURIComponent(name)}`;

class Secrets extends Emitter {
  constructor() {
    super();
    /** @type {SecretOut[]} */
    this.list = [];
    this.loaded = false;
    /** @type {string|null} why the last load failed */
    this.error = null;
  }

  /** The names, sorted, for templates. */
  get names() {
    return this.list.map((s) => s.name);
  }

  /** Read the list again; tells "change" listeners. Rejects with ApiError. */
  async load() {
    try {
      /** @type {SecretOut[]} */
      const list = await api("GET", BASE, undefined, { quiet401: true });
      this.list = [...list].sort((a, b) => a.name.localeCompare(b.name));
      this.error = null;
    } catch (err) {
      this.error = err.message;
      throw err;
    } finally {
      this.loaded = true;
      this.emit("change", this);
    }
  }

  /** Load, keeping a failure in `error` rather than throwing. */
  async refresh() {
    try {
      await this.load();
    } catch {
      /* shown from `error` */
    }
  }

  /**
   * @param {string} name
   * @param {string} value
   * @returns {Promise<SecretOut>}
   */
  async create(name, value) {
    /** @type {SecretOut} */
    const out = await api("POST", BASE, { name, value });
    await this.refresh();
    return out;
  }

  /**
   * @param {string} name
   * @param {string} value
   * @returns {Promise<SecretOut>}
   */
  async replace(name, value) {
    /** @type {SecretOut} */
    const out = await api("PUT", path(name), { value });
    await this.refresh();
    return out;
  }

  /** @param {string} name */
  async remove(name) {
    await api("DELETE", path(name));
    await this.refresh();
  }
}

export const secrets = new Secrets();
