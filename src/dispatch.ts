/**
 * dispatch: turns consumed batches into jobs, one per message and pipeline whose source topics
 * name the message's topic, each with its {@link MessageContext}.
 *
 * @example
 * ```ts
 * import { dispatch } from "./dispatch.ts";
 * // for await (const job of dispatch(source.batches(), pipelines)) ...
 * ```
 */
import type { Batch, Job, MessageContext, Pipeline, SourceRecord } from "./model.ts";
import { startMessageSpan } from "./ops/tracing.ts";
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

function headerText(value: Uint8Array | Uint8Array[]): string {
  return utf8.decode(Array.isArray(value) ? value[0] : value);
}

/** The context of `record` in `pipeline`. */
export function contextFor(pipeline: Pipeline, record: SourceRecord): MessageContext {
  const headers = Object.fromEntries(
    Object.entries(record.headers).map(([name, value]) => [name, headerText(value)]),
  );
  const messageId = messageIdFor(pipeline.name, record);
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    key: record.key === null ? null : utf8.decode(record.key),
    headers,
    timestamp: new Date(Number(record.timestamp)).toISOString(),
    pipeline: pipeline.name,
    messageId,
    correlationId: headers["x-correlation-id"] ?? messageId,
  };
}

/** The dispatch step: batches in, jobs out. */
export async function* dispatch(batches: AsyncIterable<Batch>, pipelines: readonly Pipeline[]): AsyncIterable<Job> {
  const byTopic = new Map<string, Pipeline[]>();
  for await (const batch of batches) {
    let targets = byTopic.get(batch.topic);
    if (!targets) byTopic.set(batch.topic, targets = pipelinesFor(pipelines, batch.topic));
    for (const record of batch.records) {
      for (const pipeline of targets) {
        const job: Job = { record, ctx: contextFor(pipeline, record), pipeline, generation: batch.generation };
        startMessageSpan(job);
        yield job;
      }
    }
  }
}
