// The element-type catalog: every type the server knows (`GET
// /api/v1/element-types`), with what the editor needs of each — its params
// schema, the ports drawn on its card, whether it has side effects, whether it
// takes an input.

/**
 * `GET /api/v1/element-types` answers a list of these
 * (services/roles/api/schemas.py ElementTypeOut).
 *
 * @typedef {object} ElementTypeOut
 * @property {string} type
 * @property {string} description
 * @property {object} params_schema  a JSON Schema
 * @property {string[]} ports        its output ports, "error" last
 * @property {boolean} side_effects
 */

/** The port every element fails through, drawn apart from its other ports. */
export const ERROR_PORT = "error";
const TERMINAL_TYPES = new Set(["end", "fail"]);

export class Catalog {
  /** @param {ElementTypeOut[]} types */
  constructor(types) {
    this.types = new Map();
    for (const raw of types) {
      let ports = raw.ports.filter((p) => p !== ERROR_PORT);
      if (TERMINAL_TYPES.has(raw.type))
        ports = ports.filter((p) => p !== "out");
      this.types.set(raw.type, {
        type: raw.type,
        description: raw.description,
        schema: raw.params_schema,
        ports,
        sideEffects: raw.side_effects,
        hasInput: raw.type !== "trigger",
      });
    }
  }

  list() {
    return [...this.types.values()];
  }

  /** The type, or a stand-in for one the server does not know (`unknown`). */
  get(type) {
    return (
      this.types.get(type) ?? {
        type,
        description: "",
        schema: {},
        ports: TERMINAL_TYPES.has(type) ? [] : ["out"],
        sideEffects: false,
        hasInput: type !== "trigger",
        unknown: true,
      }
    );
  }

  /** Output ports drawn on the right of a card (the error port is drawn apart). */
  outPorts(type) {
    return this.get(type).ports;
  }
}
