/**
 * @module
 * A pipeline file's `examples:` run offline through decode, match and transform, the same stage
 * code the bridge runs, and compared with what they must produce. Start-up and `deno task validate`
 * both check them, so a pipeline change that breaks an example never reaches Kafka.
 *
 * @example
 * ```ts
 * import { exampleProblems } from "./pipeline_examples.ts";
 * import { parsePipelineText } from "./config/load_pipelines.ts";
 * const yaml = "name: orders\nsource: {topics: [orders.events]}\n" +
 *   "routes: [{name: r, transform: {template: 'Order {id}'}, invoke: {prompt_id: x}}]\n" +
 *   "examples: [{value: {id: ORD-2}, expect: {route: r, text: Order ORD-1}}]\n";
 * const [pipeline] = parsePipelineText("pipelines/orders.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const problems = exampleProblems(pipeline);
 * if (problems.join() !== 'pipelines/orders.yaml:examples[0].expect.text: expected "Order ORD-1", got "Order ORD-2"') {
 *   throw new Error(problems.join());
 * }
 * ```
 */
import type { PipelineExample } from "./config/pipeline_schema.ts";
import { contextFor } from "./dispatch.ts";
import { unledgered } from "./delivery/ledger.ts";
import { isLive, type Job, type Pipeline, type SourceRecord } from "./model.ts";
import { decodeJob } from "./stages/decode.ts";
import { matchJob } from "./stages/match.ts";
import { transformJob, transformWindow } from "./stages/transform.ts";
import { windowJob } from "./stages/window.ts";
import { failure } from "./errors.ts";
import { isGlob, topicMatches } from "./util/glob.ts";

const encoder = new TextEncoder();

/** The source records an example stands for: its value, or its window's events (offsets 0, 1, …). */
export function exampleRecords(example: PipelineExample, topic: string): SourceRecord[] {
  return (example.events ?? [example.value]).map((event, index) => ({
    topic,
    partition: 0,
    offset: String(index),
    key: example.key == null ? null : encoder.encode(example.key),
    value: encoder.encode(typeof event === "string" ? event : JSON.stringify(event)),
    headers: Object.fromEntries(Object.entries(example.headers ?? {}).map(([k, v]) => [k, encoder.encode(v)])),
    timestamp: "0",
  }));
}

/** When an example's window opens and closes: a fixed time, so that its expected text can name it. */
export const EXAMPLE_WINDOW_TIME = new Date(0);

/**
 * Runs one example through decode, match and transform; several records (or one, for a route with
 * a window) make one window, as if it had closed at {@link EXAMPLE_WINDOW_TIME}. The job returned is
 * the window's, or the first event that failed on its own.
 */
export function runExample(pipeline: Pipeline, records: readonly SourceRecord[]): Job {
  const jobs = records.map((record): Job => ({ record, ctx: contextFor(pipeline, record), pipeline, ack: unledgered }));
  for (const job of jobs) {
    if (isLive(job)) decodeJob(job);
    if (isLive(job)) matchJob(job);
  }
  const stopped = jobs.find((job) => !isLive(job));
  if (stopped) return stopped;
  const [first] = jobs;
  if (!first.route!.window) {
    if (jobs.length > 1) {
      return { ...first, failure: failure("match", "permanent", "events are for a route with a window") };
    }
    transformJob(first);
    return first;
  }
  const other = jobs.find((job) => job.route !== first.route);
  if (other) return { ...other, failure: failure("match", "permanent", "the events match different routes") };
  const [job] = transformWindow(windowJob(jobs, EXAMPLE_WINDOW_TIME, EXAMPLE_WINDOW_TIME));
  return job;
}

/** Every way the pipeline's examples differ from what they expect, as `file:examples[i].field: reason`. */
export function exampleProblems(pipeline: Pipeline): string[] {
  return pipeline.examples.flatMap((example, index) => {
    const at = (field: string) => `${pipeline.file}:examples[${index}]${field}`;
    const topic = example.topic ?? pipeline.topics.find((t) => !isGlob(t));
    if (topic === undefined) return [`${at(".topic")}: every source topic is a glob: name the example's topic`];
    if (!pipeline.topics.some((pattern) => topicMatches(pattern, topic))) {
      return [`${at(".topic")}: "${topic}" is not one of the pipeline's source topics`];
    }
    const job = runExample(pipeline, exampleRecords(example, topic));
    const { expect } = example;
    if (job.failure && job.failure.stage !== expect.failure) {
      return [`${at("")}: failed in ${job.failure.stage}: ${job.failure.message}`];
    }
    const problems: string[] = [];
    if (expect.failure && !job.failure) {
      problems.push(`${at(".expect.failure")}: expected a ${expect.failure} failure, got none`);
    }
    const gotRoute = job.route?.name ?? null;
    if (gotRoute !== expect.route) {
      problems.push(`${at(".expect.route")}: expected ${show(expect.route)}, got ${show(gotRoute)}`);
    }
    if (expect.text !== undefined && !job.failure && job.text !== expect.text) {
      problems.push(`${at(".expect.text")}: expected ${show(expect.text)}, got ${show(job.text ?? null)}`);
    }
    return problems;
  });
}

function show(value: string | null): string {
  return value === null ? "no route" : JSON.stringify(value);
}
