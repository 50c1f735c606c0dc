/**
 * @module
 * What a `{placeholder}` means for a job: `$`-names read the message's metadata (`$topic`, `$key`,
 * `$partition`, `$offset`, `$timestamp`, `$pipeline`, `$route`, `$value`, `$headers.name`), any
 * other path reads the decoded value. Used by templates and by output topic names.
 *
 * @example
 * ```ts
 * import { lookup } from "./placeholders.ts";
 * // lookup(job, "$topic") === "orders.events"; lookup(job, "order.id") === "ORD-1"
 * ```
 */
import type { Job } from "./model.ts";
import { getPath } from "./util/path.ts";
import { jsonText } from "./util/json_text.ts";

/** A value as template text: strings as they are, scalars printed, objects as compact JSON. */
export function asText(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return jsonText(value);
}

/** Resolves one placeholder path for `job`, or `undefined` when it has no value. */
export function lookup(job: Pick<Job, "ctx" | "value" | "route">, path: string): string | undefined {
  const { ctx } = job;
  if (path.startsWith("$headers.")) return ctx.headers[path.slice("$headers.".length)];
  switch (path) {
    case "$topic":
      return ctx.topic;
    case "$partition":
      return String(ctx.partition);
    case "$offset":
      return ctx.offset;
    case "$key":
      return ctx.key ?? undefined;
    case "$timestamp":
      return ctx.timestamp;
    case "$pipeline":
      return ctx.pipeline;
    case "$route":
      return job.route?.name;
    case "$value":
      return asText(job.value);
  }
  return path.startsWith("$") ? undefined : asText(getPath(job.value, path));
}
