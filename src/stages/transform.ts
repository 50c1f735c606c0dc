/**
 * @module
 * transform: renders the route's template into the text the agent receives. Without a template
 * the value itself is sent (text as is, anything else as indented JSON). A placeholder with no
 * value is a permanent failure unless the route says `on_missing: empty`.
 *
 * @example
 * ```ts
 * import { transform } from "./transform.ts";
 * import { match } from "./match.ts";
 * import { decode } from "./decode.ts";
 * import { contextFor } from "../dispatch.ts";
 * import { unledgered } from "../ledger.ts";
 * import { parsePipelineText } from "../config/load_pipelines.ts";
 * const yaml = "name: p\nsource: {topics: [t]}\nroutes: [{name: r, transform: {template: 'Order {id}'}, invoke: {prompt_id: x}}]\n";
 * const [p] = parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const value = new TextEncoder().encode('{"id":"A-1"}');
 * const record = { topic: "t", partition: 0, offset: "0", key: null, value, headers: {}, timestamp: "0" };
 * const jobs = ReadableStream.from([{ record, ctx: contextFor(p, record), pipeline: p, ack: unledgered }]);
 * for await (const job of transform(match(decode(jobs)))) if (job.text !== "Order A-1") throw new Error(job.text);
 * ```
 */
import { failure } from "../errors.ts";
import type { Job } from "../model.ts";
import { renderTemplate } from "../template.ts";
import { lookup } from "../placeholders.ts";
import { perJob } from "./stage.ts";
import { jsonText } from "../util/json_text.ts";

/**
 * A value as indented JSON; as compact JSON when indenting is out of reach (indented text grows with
 * the square of the depth: 12 kB nested 6,000 deep would be 72 MB).
 */
function indentedJson(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? "null";
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return jsonText(value);
  }
}

/** Transforms one job in place. */
export function transformJob(job: Job): void {
  const route = job.route!;
  if (!route.template) {
    job.text = typeof job.value === "string" ? job.value : indentedJson(job.value);
    return;
  }
  const { text, missing } = renderTemplate(route.template, (path) => lookup(job, path));
  if (missing.length && route.onMissing === "error") {
    job.failure = failure(
      "transform",
      "permanent",
      `template field${missing.length > 1 ? "s" : ""} missing: ${missing.join(", ")}`,
    );
    return;
  }
  job.text = text;
}

/** The transform stage. */
export const transform = perJob("transform", transformJob);
