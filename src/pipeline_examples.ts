/**
 * @module
 * A pipeline file's `examples:` run offline through decode, match and transform, the same stage
 * code the bridge runs, and compared with what they must produce. Start-up and `deno task validate`
 * both check them, so a pipeline change that breaks an example never reaches Kafka.
 *
 * @example
 * ```ts
 * import { exampleProblems } from "./pipeline_examples.ts";
 * // for (const line of exampleProblems(pipeline)) console.error(line);
 * // pipelines/orders.yaml:examples[0].expect.text: expected "Order ORD-1", got "Order ORD-2"
 * ```
 */
import type { PipelineExample } from "./config/pipeline_schema.ts";
import { contextFor } from "./dispatch.ts";
import { unledgered } from "./ledger.ts";
import { isLive, type Job, type Pipeline, type SourceRecord } from "./model.ts";
import { decodeJob } from "./stages/decode.ts";
import { matchJob } from "./stages/match.ts";
import { transformJob } from "./stages/transform.ts";
import { isGlob, topicMatches } from "./util/glob.ts";

const encoder = new TextEncoder();

/** The source record an example stands for. */
export function exampleRecord(example: PipelineExample, topic: string): SourceRecord {
  const value = typeof example.value === "string" ? example.value : JSON.stringify(example.value);
  return {
    topic,
    partition: 0,
    offset: "0",
    key: example.key == null ? null : encoder.encode(example.key),
    value: encoder.encode(value),
    headers: Object.fromEntries(Object.entries(example.headers ?? {}).map(([k, v]) => [k, encoder.encode(v)])),
    timestamp: "0",
  };
}

/** Runs one example through decode, match and transform. */
export function runExample(pipeline: Pipeline, record: SourceRecord): Job {
  const job: Job = { record, ctx: contextFor(pipeline, record), pipeline, ack: unledgered };
  for (const step of [decodeJob, matchJob, transformJob]) {
    if (isLive(job)) step(job);
  }
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
    const job = runExample(pipeline, exampleRecord(example, topic));
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
