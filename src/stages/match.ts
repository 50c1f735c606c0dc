/**
 * @module
 * match: picks the first route of the pipeline whose `topics`, `headers` and `fields` all match.
 * With no match the job is skipped (`unmatched: skip`, the default) or dead-lettered
 * (`unmatched: dlq`).
 *
 * @example
 * ```ts
 * import { match } from "./match.ts";
 * import { decode } from "./decode.ts";
 * import { contextFor } from "../dispatch.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * import { parsePipelineText } from "../config/load_pipelines.ts";
 * const yaml = "name: p\nsource: {topics: [t]}\nroutes: [{name: r, transform: {template: 'Order {id}'}, invoke: {prompt_id: x}}]\n";
 * const [p] = parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const value = new TextEncoder().encode('{"id":"A-1"}');
 * const record = { topic: "t", partition: 0, offset: "0", key: null, value, headers: {}, timestamp: "0" };
 * const jobs = ReadableStream.from([{ record, ctx: contextFor(p, record), pipeline: p, ack: unledgered }]);
 * for await (const job of match(decode(jobs))) if (job.route?.name !== "r") throw new Error("the only route");
 * ```
 */
import { failure } from "../errors.ts";
import { hopCount, type Job, type MessageContext, type Route } from "../model.ts";
import { topicMatches } from "../util/glob.ts";
import { getPath } from "../util/path.ts";
import { perJob } from "./stage.ts";

/** Whether `route` takes a message with this context and decoded value. */
export function routeMatches(route: Route, ctx: MessageContext, value: unknown): boolean {
  const { topics, headers, fields } = route.match;
  if (topics && !topics.some((pattern) => topicMatches(pattern, ctx.topic))) return false;
  for (const [name, expected] of Object.entries(headers ?? {})) {
    if (ctx.headers[name] !== expected) return false;
  }
  for (const [path, expected] of Object.entries(fields ?? {})) {
    if (getPath(value, path) !== expected) return false;
  }
  return true;
}

/** Matches one job in place. */
export function matchJob(job: Job): void {
  // An answer's route is the one its task asked on (see answers.ts).
  if (job.answer) return;
  const hops = hopCount(job.ctx);
  if (hops >= job.pipeline.maxHops) {
    job.failure = failure(
      "match",
      "loop",
      `a chain of ${hops} replies reached pipeline ${job.pipeline.name} (chain.max_hops ${job.pipeline.maxHops})`,
    );
    return;
  }
  job.route = job.pipeline.routes.find((route) => routeMatches(route, job.ctx, job.value));
  if (job.route) return;
  if (job.pipeline.unmatched === "dlq") {
    job.failure = failure("match", "permanent", `no route of pipeline ${job.pipeline.name} matched`);
  } else {
    job.skipped = true;
  }
}

/** The match stage. */
export const match = perJob("match", matchJob);
