/**
 * @module
 * A pipeline file's `examples:` run offline through decode, match and transform, the same stage
 * code the bridge runs, and compared with what they must produce. Start-up and `deno task validate`
 * both check them, so a pipeline change that breaks an example never reaches Kafka. An example of
 * an Avro pipeline may name its record's schema (`schema: payment.avsc`, beside the pipeline file):
 * its value must fit it, and is written and read back with it as the bridge reads a record
 * (src/registry/avro_json.ts), so that the routes see what a real record would give them.
 *
 * @example
 * ```ts
 * import { exampleProblems } from "./pipeline_examples.ts";
 * import { parsePipelineText } from "./config/load_pipelines.ts";
 * const yaml = "name: orders\nsource: {topics: [orders.events]}\n" +
 *   "routes: [{name: r, transform: {template: 'Order {id}'}, invoke: {prompt_id: x}}]\n" +
 *   "examples: [{value: {id: ORD-2}, expect: {route: r, text: Order ORD-1}}]\n";
 * const [pipeline] = parsePipelineText("pipelines/orders.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const problems = await exampleProblems(pipeline);
 * if (problems.join() !== 'pipelines/orders.yaml:examples[0].expect.text: expected "Order ORD-1", got "Order ORD-2"') {
 *   throw new Error(problems.join());
 * }
 * ```
 */
import { dirname, isAbsolute, join } from "node:path";
import type { PipelineExample } from "./config/pipeline_schema.ts";
import { contextFor } from "./dispatch.ts";
import { unledgered } from "./delivery/ledger.ts";
import { isLive, type Job, type Pipeline, type SourceRecord } from "./model.ts";
import { decodeJob } from "./stages/decode.ts";
import { matchJob } from "./stages/match.ts";
import { transformJob, transformWindow } from "./stages/transform.ts";
import { windowJob } from "./stages/window.ts";
import { isGlob, topicMatches } from "./util/glob.ts";
import { errorMessage, failure } from "./errors.ts";
import type { AvroType } from "./registry/avro_json.ts";

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

/**
 * Every way the pipeline's examples differ from what they expect, as `file:examples[i].field: reason`.
 * Reads the Avro schemas examples name (relative to the pipeline file); nothing else.
 */
export async function exampleProblems(pipeline: Pipeline): Promise<string[]> {
  const schemas = new Map<string, Promise<AvroType | string>>();
  const problems = await Promise.all(pipeline.examples.map(async (example, index) => {
    const at = (field: string) => `${pipeline.file}:examples[${index}]${field}`;
    const topic = example.topic ?? pipeline.topics.find((t) => !isGlob(t));
    if (topic === undefined) return [`${at(".topic")}: every source topic is a glob: name the example's topic`];
    if (!pipeline.topics.some((pattern) => topicMatches(pattern, topic))) {
      return [`${at(".topic")}: "${topic}" is not one of the pipeline's source topics`];
    }
    if (example.schema !== undefined) {
      const path = isAbsolute(example.schema) ? example.schema : join(dirname(pipeline.file), example.schema);
      if (!schemas.has(path)) schemas.set(path, readAvroSchema(path));
      const type = await schemas.get(path)!;
      if (typeof type === "string") return [`${at(".schema")}: ${type}`];
      const read = await asDecoded(type, example);
      if ("misfits" in read) return read.misfits.map(({ field, reason }) => `${at(field)}: ${reason}`);
      example = read.example;
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
  }));
  return problems.flat();
}

/** The Avro schema in `path`, or why there is none; avsc is loaded only where an example names a schema. */
async function readAvroSchema(path: string): Promise<AvroType | string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    return `cannot read ${path}: ${errorMessage(error)}`;
  }
  const { parseAvroSchema } = await import("./registry/avro_json.ts");
  try {
    return parseAvroSchema(text);
  } catch (error) {
    return `${path} is ${errorMessage(error)}`;
  }
}

/** The example with its value (or events) as records of `type` read back; or where they do not fit it. */
async function asDecoded(
  type: AvroType,
  example: PipelineExample,
): Promise<{ example: PipelineExample } | { misfits: { field: string; reason: string }[] }> {
  const { avroAsDecoded, avroMisfits } = await import("./registry/avro_json.ts");
  const events = example.events ?? [example.value];
  const field = (index: number) => example.events ? `.events[${index}]` : ".value";
  const misfits = events.flatMap((event, index) =>
    avroMisfits(type, event).map(({ path, reason }) => ({
      field: field(index) + path.map((part) => /^\d+$/.test(part) ? `[${part}]` : `.${part}`).join(""),
      reason,
    }))
  );
  if (misfits.length) return { misfits };
  const read = events.map((event) => avroAsDecoded(type, event));
  return { example: example.events ? { ...example, events: read } : { ...example, value: read[0] } };
}

function show(value: string | null): string {
  return value === null ? "no route" : JSON.stringify(value);
}
