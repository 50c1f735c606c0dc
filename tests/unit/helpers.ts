/** Builders for unit tests: a pipeline from YAML, and a job for a message. */
import { contextFor } from "../../src/dispatch.ts";
import { unledgered } from "../../src/delivery/ledger.ts";
import { parsePipelineText } from "../../src/config/load_pipelines.ts";
import type { Job, Pipeline, SourceRecord } from "../../src/model.ts";
import { decodeJob } from "../../src/stages/decode.ts";
import { matchJob } from "../../src/stages/match.ts";
import { transformJob } from "../../src/stages/transform.ts";

const encoder = new TextEncoder();

export function pipeline(yaml: string): Pipeline {
  const { pipelines, problems } = parsePipelineText("unit.yaml", yaml, {}, { maxRetries: 2, retryDelayMs: 100 });
  if (problems.length) throw new Error(problems.join("\n"));
  return pipelines[0];
}

export function record(
  value: string | null,
  { topic = "orders.events", partition = 0, offset = "7", key = "K-1", headers = {} as Record<string, string> } = {},
): SourceRecord {
  return {
    topic,
    partition,
    offset,
    key: key === null ? null : encoder.encode(key),
    value: value === null ? null : encoder.encode(value),
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, encoder.encode(v)])),
    timestamp: String(Date.UTC(2026, 0, 12, 10)),
  };
}

export function job(p: Pipeline, r: SourceRecord): Job {
  return { record: r, ctx: contextFor(p, r), pipeline: p, ack: unledgered };
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const result: T[] = [];
  for await (const item of items) result.push(item);
  return result;
}

export async function* from<T>(items: T[]): AsyncIterable<T> {
  for (const item of items) yield item;
}

export const simple = pipeline(`
name: orders
source: { topics: ["orders.*"] }
routes:
  - name: shipped
    match: { fields: { event_type: shipped }, headers: { source: shop } }
    transform: { template: "Order {order_id} shipped to {customer.email} ({$topic}/{$partition}@{$offset} key {$key})" }
    invoke: { prompt_id: p-shipped }
  - name: any
    invoke: { prompt_id: p-any }
`);

/** A job through decode, match and transform, ready to invoke `promptId` with "hello agent". */
export function readyJob(promptId: string, { timeout = "5s", retries = 2, longRunning = false } = {}): Job {
  const p = pipeline(`
name: calls
source: { topics: [t] }
routes:
  - name: r
    transform: { template: "hello {who}" }
    invoke: { prompt_id: ${promptId}, timeout: ${timeout}, long_running: ${longRunning} }
delivery: { retries: { max: ${retries}, backoff: 100ms, max_backoff: 1s } }
`);
  const j = job(p, record('{"who":"agent"}', { topic: "t" }));
  decodeJob(j);
  matchJob(j);
  transformJob(j);
  return j;
}

/** `job` as one of a ledger generation: stale, its signal aborted, once `generation` aborts (a rebalance). */
export function ofGeneration(job: Job, generation: AbortController): Job {
  return {
    ...job,
    ack: {
      ...job.ack,
      get stale() {
        return generation.signal.aborted;
      },
      signal: generation.signal,
    },
  };
}
