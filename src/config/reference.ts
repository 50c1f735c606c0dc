/**
 * @module
 * Generated documentation: the pipeline file's JSON Schema (for editors) and Markdown tables of
 * pipeline fields and environment variables (for docs/pipelines.md and docs/configuration.md), all
 * from the zod schemas, so the docs cannot drift from what is validated. `deno task docs` writes them; a test checks they are
 * current.
 *
 * @example
 * ```ts
 * import { pipelineJsonSchema } from "./reference.ts";
 * pipelineJsonSchema().properties; // { name: …, source: …, routes: … }
 * ```
 */
import { z } from "zod";
import { PipelineFileSchema } from "./pipeline_schema.ts";
import { settingMetas, SettingsFields } from "./settings.ts";

interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  additionalProperties?: JsonSchema | boolean;
  [key: string]: unknown;
}

/** The JSON Schema of a pipeline file, as editors read it (input form: durations as `30s`). */
export function pipelineJsonSchema(): JsonSchema {
  return {
    ...z.toJSONSchema(PipelineFileSchema, { io: "input", unrepresentable: "any" }) as JsonSchema,
    title: "agentstream pipeline file",
  };
}

function typeOf(schema: JsonSchema): string {
  if (schema.enum) return schema.enum.map((v) => `\`${v}\``).join(" \\| ");
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" \\| ");
  if (schema.type === "array") return `list of ${typeOf(schema.items ?? {})}`;
  if (schema.type === "object" && typeof schema.additionalProperties === "object") {
    return `map of ${typeOf(schema.additionalProperties)}`;
  }
  return Array.isArray(schema.type) ? schema.type.join(" \\| ") : schema.type ?? "any";
}

function rows(schema: JsonSchema, prefix: string, required: boolean): string[] {
  const result: string[] = [];
  if (prefix) {
    const fallback = schema.default === undefined
      ? (required ? "required" : "")
      : `\`${JSON.stringify(schema.default)}\``;
    result.push(`| \`${prefix}\` | ${typeOf(schema)} | ${fallback} | ${schema.description ?? ""} |`);
  }
  const object = schema.type === "array" ? schema.items : schema;
  for (const [name, child] of Object.entries(object?.properties ?? {})) {
    const path = `${prefix}${schema.type === "array" ? "[]" : ""}${prefix ? "." : ""}${name}`;
    result.push(...rows(child, path, object?.required?.includes(name) ?? false));
  }
  return result;
}

/** The Markdown table of pipeline file fields. */
export function pipelineReference(): string {
  return ["| field | type | default | meaning |", "| --- | --- | --- | --- |", ...rows(pipelineJsonSchema(), "", true)]
    .join("\n");
}

/** The Markdown table of environment variables, with the old names each still reads. */
export function environmentReference(): string {
  const schema = z.toJSONSchema(SettingsFields, { io: "input", unrepresentable: "any" }) as JsonSchema;
  const lines = ["| variable | default | meaning |", "| --- | --- | --- |"];
  for (const [field, meta] of settingMetas()) {
    const { default: fallback, description = "" } = schema.properties?.[field] ?? {};
    const old = meta.aliases?.length ? ` Old name: ${meta.aliases.map((name) => `\`${name}\``).join(", ")}.` : "";
    lines.push(`| \`${meta.env}\` | ${fallback === undefined ? "" : `\`${fallback}\``} | ${description}${old} |`);
  }
  return lines.join("\n");
}

/** Replaces the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`. */
export function replaceGenerated(document: string, name: string, content: string): string {
  const start = `<!-- generated:${name} -->`;
  const end = `<!-- /generated:${name} -->`;
  const from = document.indexOf(start);
  const to = document.indexOf(end);
  if (from < 0 || to < from) throw new Error(`markers for ${name} not found`);
  return `${document.slice(0, from + start.length)}\n${content}\n${document.slice(to)}`;
}

/** The documents that hold generated sections: path (from the repository root) → section name → its content. */
export const GENERATED_DOCUMENTS: Readonly<Record<string, Readonly<Record<string, () => string>>>> = {
  "docs/configuration.md": { environment: environmentReference },
  "docs/pipelines.md": { "pipeline-reference": pipelineReference },
};

/** `document`, the text of the file at `path` (a key of {@link GENERATED_DOCUMENTS}), with its generated sections brought up to date. */
export function withGeneratedSections(path: string, document: string): string {
  const sections = GENERATED_DOCUMENTS[path];
  if (!sections) throw new Error(`${path} has no generated sections`);
  return Object.entries(sections).reduce((text, [name, content]) => replaceGenerated(text, name, content()), document);
}
