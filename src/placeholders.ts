/**
 * @module
 * What a `{placeholder}` means for a job: `$`-names read the message's metadata (`$topic`, `$key`,
 * `$partition`, `$offset`, `$timestamp`, `$pipeline`, `$route`, `$value`, `$headers.name`), any
 * other path reads the decoded value. Used by templates and by output topic names.
 *
 * A window's job also has `$events` (its events rendered, one per line), `$count`, `$window.start`
 * and `$window.end`; `$key` is the window key, and the other names read its first event.
 *
 * @example
 * ```ts
 * import { lookup } from "./placeholders.ts";
 * const ctx = { topic: "orders.events", partition: 0, offset: "7", key: "K-1", headers: { "x-kind": "order" },
 *   timestamp: "1970-01-01T00:00:00.000Z", pipeline: "orders", messageId: "m", correlationId: "m" };
 * const job = { ctx, value: { order: { id: "ORD-1" } } };
 * if (lookup(job, "$topic") !== "orders.events" || lookup(job, "$headers.x-kind") !== "order") throw new Error("metadata");
 * if (lookup(job, "order.id") !== "ORD-1" || lookup(job, "order") !== '{"id":"ORD-1"}') throw new Error("the value");
 * if (lookup(job, "order.total") !== undefined) throw new Error("no such field: no value");
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
export function lookup(job: Pick<Job, "ctx" | "value" | "route" | "window">, path: string): string | undefined {
  const { ctx, window } = job;
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
    case "$events":
      return window?.events;
    case "$count":
      return window && String(window.members.length);
    case "$window.start":
      return window?.start;
    case "$window.end":
      return window?.end;
  }
  return path.startsWith("$") ? undefined : asText(getPath(job.value, path));
}
