/**
 * @module
 * dispatch: turns consumed batches into jobs, one per message and pipeline whose source topics
 * name the message's topic, each with its {@link MessageContext}.
 *
 * @example
 * ```ts
 * import { dispatch } from "./dispatch.ts";
 * // for await (const job of dispatch(source.batches(), pipelines)) ...
 * ```
 */
import { unledgered } from "./ledger.ts";
import type { Batch, HeaderValue, Job, MessageContext, Pipeline, SourceRecord } from "./model.ts";
import { startMessageSpan } from "./ops/tracing.ts";
import { contain } from "./stages/stage.ts";
import { topicMatches } from "./util/glob.ts";
import { nameBasedUuid } from "./util/uuid.ts";

const utf8 = new TextDecoder();

/** The pipelines that take messages from `topic`. */
export function pipelinesFor(pipelines: readonly Pipeline[], topic: string): Pipeline[] {
  return pipelines.filter((pipeline) => pipeline.topics.some((pattern) => topicMatches(pattern, topic)));
}

/**
 * A message id that is the same every time this message reaches this pipeline, shaped as a UUID
 * (version 8, name-based), so an agent can recognise a redelivery.
 */
export function messageIdFor(pipeline: string, record: Pick<SourceRecord, "topic" | "partition" | "offset">): string {
  return nameBasedUuid(`${pipeline}\n${record.topic}\n${record.partition}\n${record.offset}`);
}

/** A header's text: its first value, decoded as UTF-8 (bytes that are not become U+FFFD); null when it has none. */
function headerText(value: HeaderValue | HeaderValue[]): string | null {
  const first = Array.isArray(value) ? value[0] : value;
  return first ? utf8.decode(first) : null;
}

/** The context of `record` in `pipeline`. */
export function contextFor(pipeline: Pipeline, record: SourceRecord): MessageContext {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(record.headers)) {
    const text = headerText(value);
    if (text !== null) headers[name] = text;
  }
  const messageId = messageIdFor(pipeline.name, record);
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    key: record.key === null ? null : utf8.decode(record.key),
    headers,
    timestamp: isoTime(record.timestamp),
    pipeline: pipeline.name,
    messageId,
    correlationId: headers["x-correlation-id"] ?? messageId,
  };
}

/** Kafka's milliseconds as ISO 8601; a value that is no time (none, garbage) as it came. */
function isoTime(ms: string): string {
  const time = new Date(Number(ms));
  return Number.isNaN(time.getTime()) ? ms : time.toISOString();
}

/** The dispatch step: batches in, jobs out. */
export async function* dispatch(batches: AsyncIterable<Batch>, pipelines: readonly Pipeline[]): AsyncIterable<Job> {
  const byTopic = new Map<string, Pipeline[]>();
  for await (const batch of batches) {
    let targets = byTopic.get(batch.topic);
    if (!targets) byTopic.set(batch.topic, targets = pipelinesFor(pipelines, batch.topic));
    for (const record of batch.records) {
      for (const pipeline of targets) {
        const ack = batch.ack?.(record.offset, pipeline.name) ?? unledgered;
        let job: Job;
        try {
          job = { record, ctx: contextFor(pipeline, record), pipeline, ack };
          startMessageSpan(job);
        } catch (error) {
          // Still a job, with what can be known without reading the record, so its failure is published.
          const messageId = messageIdFor(pipeline.name, record);
          const { topic, partition, offset } = record;
          const ctx = { topic, partition, offset, key: null, headers: {}, timestamp: "", pipeline: pipeline.name };
          job = contain(
            { record, ctx: { ...ctx, messageId, correlationId: messageId }, pipeline, ack },
            "decode",
            error,
          );
        }
        yield job;
      }
    }
  }
}
