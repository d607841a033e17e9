// Reading an element type's params JSON Schema: following `$ref`s, seeing
// through a nullable alternative, and deciding which control a property gets
// (its "kind"). No DOM here; the form is built from these answers.

const CEL_NAMES = new Set([
  "expression",
  "condition",
  "when",
  "predicate",
  "filter",
]);
const PROSE_NAMES = new Set([
  "prompt",
  "system_prompt",
  "message",
  "description",
  "template",
]);

/** Follow `$ref`s (local `#/$defs/…` or `#/definitions/…`) against `root`. */
export function deref(schema, root, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 16) return schema || {};
  if (typeof schema.$ref === "string" && schema.$ref.startsWith("#/")) {
    const target = schema.$ref
      .slice(2)
      .split("/")
      .reduce(
        (node, part) =>
          node ? node[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined,
        root,
      );
    const { $ref, ...rest } = schema;
    return deref({ ...(target || {}), ...rest }, root, depth + 1);
  }
  return schema;
}

/** The schema without a `null` alternative, and whether null was allowed. */
export function unwrapNullable(schema, root) {
  let node = deref(schema, root);
  let nullable = false;
  const alternatives = node.anyOf ?? node.oneOf;
  if (Array.isArray(alternatives)) {
    const rest = alternatives.filter((alt) => deref(alt, root).type !== "null");
    nullable = rest.length < alternatives.length;
    if (rest.length === 1) {
      const { anyOf, oneOf, ...own } = node;
      node = { ...deref(rest[0], root), ...own };
    }
  }
  if (Array.isArray(node.type)) {
    const types = node.type.filter((t) => t !== "null");
    nullable = nullable || types.length < node.type.length;
    node = { ...node, type: types.length === 1 ? types[0] : types };
  }
  return { node, nullable };
}

export function kindOf(name, schema, root, context = {}) {
  const { node } = unwrapNullable(schema, root);
  if (
    Array.isArray(node.enum) &&
    node.enum.every((v) => typeof v === "string" || typeof v === "number")
  )
    return "enum";
  if (node.const !== undefined) return "json";
  if (node.anyOf || node.oneOf || Array.isArray(node.type)) return "json";
  switch (node.type) {
    case "string": {
      const hint =
        `${node.format ?? ""} ${node.description ?? ""} ${node["x-language"] ?? ""}`.toLowerCase();
      if (
        node.format === "cel" ||
        node["x-cel"] ||
        CEL_NAMES.has(name) ||
        hint.includes("cel")
      )
        return "cel";
      if (PROSE_NAMES.has(name) || (node.maxLength ?? 0) > 200) return "text";
      return "string";
    }
    case "number":
      return "number";
    case "integer":
      return "integer";
    case "boolean":
      return "boolean";
    case "object": {
      const additional = node.additionalProperties
        ? deref(node.additionalProperties, root)
        : null;
      const props = node.properties && Object.keys(node.properties).length;
      if (!props && additional && additional.type === "string") return "map";
      if (props && (context.depth ?? 0) < 2) return "group";
      return "json";
    }
    default:
      return "json";
  }
}
