/**
 * @module
 * Message templates: `{field}` and `{a.b.c}` read the decoded value, `{$topic}`, `{$key}`,
 * `{$partition}`, `{$offset}`, `{$timestamp}`, `{$pipeline}`, `{$route}`, `{$value}` and
 * `{$headers.name}` read the message's metadata; `{{` and `}}` stand for literal braces, as in the
 * old bridge's Python `str.format` templates.
 *
 * Templates are parsed once, when the configuration loads, so a broken one is a configuration error.
 *
 * @example
 * ```ts
 * import { parseTemplate, renderTemplate } from "./template.ts";
 * const template = parseTemplate("Order {order_id} on {$topic}");
 * if ("error" in template) throw new Error(template.error);
 * const { text, missing } = renderTemplate(template, (path) => ({ order_id: "ORD-1", $topic: "orders.events" })[path]);
 * if (text !== "Order ORD-1 on orders.events" || missing.length) throw new Error(text);
 * ```
 */
export type TemplatePart = { literal: string } | { path: string };

/** A parsed template: literal text and placeholders in order. */
export interface Template {
  readonly source: string;
  readonly parts: readonly TemplatePart[];
}

/** Parses `source`; returns `{ error }` naming the offending column when braces do not pair up. */
export function parseTemplate(source: string): Template | { error: string } {
  const parts: TemplatePart[] = [];
  let literal = "";
  for (let i = 0; i < source.length; i++) {
    const char = source[i];
    if ((char === "{" || char === "}") && source[i + 1] === char) {
      literal += char;
      i++;
    } else if (char === "{") {
      const end = source.indexOf("}", i);
      const path = end === -1 ? "" : source.slice(i + 1, end).trim();
      if (end === -1) return { error: `unclosed "{" at character ${i + 1}` };
      if (!/^\$?[\w-]+(\.[\w-]+)*$/.test(path)) {
        return { error: `"{${path}}" at character ${i + 1} is not a field path` };
      }
      if (literal) parts.push({ literal });
      literal = "";
      parts.push({ path });
      i = end;
    } else if (char === "}") {
      return { error: `unmatched "}" at character ${i + 1} (write "}}" for a literal brace)` };
    } else {
      literal += char;
    }
  }
  if (literal) parts.push({ literal });
  return { source, parts };
}

/**
 * Renders a parsed template. `lookup` resolves a placeholder path to text, or `undefined` when it
 * has no value; those paths are listed in `missing` and render as empty text.
 */
export function renderTemplate(
  template: Template,
  lookup: (path: string) => string | undefined,
): { text: string; missing: string[] } {
  const missing: string[] = [];
  let text = "";
  for (const part of template.parts) {
    if ("literal" in part) {
      text += part.literal;
      continue;
    }
    const value = lookup(part.path);
    if (value === undefined) missing.push(part.path);
    else text += value;
  }
  return { text, missing };
}
