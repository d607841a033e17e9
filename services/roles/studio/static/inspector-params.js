// An element's parameters in the inspector: a form from its type's JSON
// Schema (schemaform.js), or the params as raw JSON, with a toggle between.

import { jsonField } from "./jsonfield.js";
import { schemaForm } from "./schemaform.js";
import { offerSecrets } from "./secretinsert.js";
import { h } from "./util.js";

/** @typedef {import("./inspector.js").Inspector} Inspector */

/** Fields whose map values are CEL, by element type (transform's `output`). */
const CEL_MAPS = { transform: ["output"] };

/**
 * @param {Inspector} insp
 * @param {object} element  an element of the process document
 * @param {object} info     its type, from the catalog
 * @returns {HTMLElement}  the section, to append
 */
export function paramsSection(insp, element, info) {
  const section = h("div", {
    class: "insp-section",
    "data-section": "params",
  });
  const toggle = h(
    "button",
    {
      type: "button",
      class: "btn small ghost",
      onClick: () => {
        insp.rawMode = !insp.rawMode;
        insp.render();
      },
    },
    insp.rawMode ? "Form" : "{ } JSON",
  );
  section.append(h("h3", {}, h("span", {}, "Parameters"), toggle));
  const onParams = (params) => insp.doc.setParams(element.key, params);
  if (insp.rawMode)
    section.append(
      jsonField(
        "params",
        element.params ?? {},
        (v) => onParams(v ?? {}),
        "The element's params as JSON",
      ),
    );
  else {
    const form = schemaForm(info.schema, element.params ?? {}, onParams, {
      celMaps: CEL_MAPS[element.type] ?? [],
    });
    offerSecrets(form, element.type);
    section.append(form);
  }
  if (info.sideEffects)
    section.append(
      h(
        "div",
        { class: "field-hint" },
        "Has side effects: takes retry and timeout_s; every attempt is recorded.",
      ),
    );
  return section;
}
