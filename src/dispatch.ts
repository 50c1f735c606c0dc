/**
 * @module
 * dispatch: turns consumed batches into jobs, one per message and pipeline whose source topics
 * name the message's topic, each with its {@link MessageContext}.
 *
 * @example
 * ```ts
 * import { dispatch } from "./dispatch.ts";
 * import { parsePipelineText } from "./config/load_pipelines.ts";
 * const pipelines = [["all", "orders.*"], ["events", "orders.events"], ["other", "customers"]].flatMap(([name, topic]) => {
 *   const yaml = `name: ${name}\nsource: {topics: ['${topic}']}\nroutes: [{name: r, invoke: {prompt_id: x}}]\n`;
 *   return parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * });
 * const record = { topic: "orders.events", partition: 0, offset: "7", key: null, value: new Uint8Array(), headers: {}, timestamp: "0" };
 * const batches = ReadableStream.from([{ topic: "orders.events", partition: 0, records: [record] }]);
 * const jobs = await Array.fromAsync(dispatch(batches, pipelines));
 * if (jobs.map((job) => job.ctx.pipeline).join() !== "all,events") throw new Error("one job per pipeline reading the topic");
 * ```
 */
import { unledgered } from "./delivery/ledger.ts";
import type { Answer, Batch, HeaderValue, Job, MessageContext, Pipeline, SourceRecord } from "./model.ts";
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

/** The pipelines a record of `topic` goes to: those it answers (an answers topic), else those that read it. */
export function targetPipelines(
  pipelines: readonly Pipeline[],
  topic: string,
  answerTopics?: { pipelinesFor(topic: string): readonly Pipeline[] },
): readonly Pipeline[] {
  const answered = answerTopics?.pipelinesFor(topic) ?? [];
  return answered.length ? answered : pipelinesFor(pipelines, topic);
}

/** The header that marks a record of an answers topic as the bridge's own timeout of a waiting task. */
export const ANSWER_KIND_HEADER = "x-agentstream-answer";

/** The answer a record of an answers topic carries, before its body is read (src/stages/answers.ts). */
function answerOf(record: SourceRecord): Answer {
  const kind = record.headers[ANSWER_KIND_HEADER];
  return {
    taskId: record.key === null ? "" : utf8.decode(record.key),
    timeout: kind !== undefined && headerText(kind) === "timeout",
  };
}

/**
 * The dispatch step: batches in, jobs out. A record of an answers topic (see src/answer_topics.ts)
 * becomes a job of each pipeline it answers, marked as an answer.
 */
export async function* dispatch(
  batches: AsyncIterable<Batch>,
  pipelines: readonly Pipeline[],
  answerTopics?: { pipelinesFor(topic: string): readonly Pipeline[] },
): AsyncIterable<Job> {
  const byTopic = new Map<string, readonly Pipeline[]>();
  for await (const batch of batches) {
    const answers = (answerTopics?.pipelinesFor(batch.topic).length ?? 0) > 0;
    // The pipelines an answers topic serves grow as their sources are found: never cached.
    let targets = answers ? undefined : byTopic.get(batch.topic);
    if (!targets) targets = targetPipelines(pipelines, batch.topic, answerTopics);
    if (!answers) byTopic.set(batch.topic, targets);
    for (const record of batch.records) {
      for (const pipeline of targets) {
        const ack = batch.ack?.(record.offset, pipeline.name) ?? unledgered;
        let job: Job;
        try {
          job = { record, ctx: contextFor(pipeline, record), pipeline, ack };
          if (answers) job.answer = answerOf(record);
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
