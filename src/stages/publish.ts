/**
 * @module
 * publish: writes each job's outcome to Kafka and yields it once the broker has acknowledged it.
 * A reply goes to the responses topic (default `{$topic}.responses`) as a JSON envelope with the
 * source key; a failure goes to the DLQ topic (default `{$topic}.dlq`) with the original key, bytes
 * and headers plus `x-error-*` headers. Skipped and abandoned jobs are passed on unwritten.
 *
 * A DLQ record too large for its topic goes out with its value cut (`x-value-truncated` gives the
 * original length); one refused even then is `dropped`: logged, counted, and the process goes on.
 *
 * A window's reply envelope adds `window: {start, end, count, first, last}`; a failed window puts
 * each of its events in the DLQ, as if it had failed alone, with `x-window-events` and `x-window-count`.
 *
 * @example
 * ```ts
 * import { publish } from "./publish.ts";
 * import { failure } from "../errors.ts";
 * import { contextFor } from "../dispatch.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * import { parsePipelineText } from "../config/load_pipelines.ts";
 * const yaml = "name: p\nsource: {topics: [t]}\nroutes: [{name: r, invoke: {prompt_id: x}}]\n";
 * const [p] = parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const record = { topic: "t", partition: 0, offset: "0", key: null, value: null, headers: {}, timestamp: "0" };
 * const job = { record, ctx: contextFor(p, record), pipeline: p, ack: unledgered, failure: failure("decode", "permanent", "no value") };
 * const sent: string[] = [];
 * const kafka = { send: (topic: string) => (sent.push(topic), Promise.resolve()) };
 * for await (const { outcome } of publish(ReadableStream.from([job]), kafka)) {
 *   if (outcome !== "dead-lettered" || sent[0] !== "t.dlq") throw new Error("a failure goes to the DLQ");
 * }
 * ```
 */
import { Buffer } from "node:buffer";
import { Abandoned, errorMessage, failure } from "../errors.ts";
import { hopCount, type Job, jobAgent, orderingKey, type OutRecord } from "../model.ts";
import type { Outcome, Sink } from "../delivery/ports.ts";

export type { OutRecord };
import { traceparentOf } from "../ops/tracing.ts";
import { redact } from "../secrets.ts";
import { lookup } from "../placeholders.ts";
import { renderTemplate, type Template } from "../template.ts";
import { mapUnordered } from "../util/concurrent.ts";
import { contain } from "./stage.ts";
import { KeyedQueue } from "../util/keyed_queue.ts";
import { jsonText } from "../util/json_text.ts";
import { isReplyFormat, type ReplyEncoder, UnencodableReply } from "../registry/wire.ts";
import { Turns } from "../util/turns.ts";
import type { RegistryWaits } from "./registry_waits.ts";

/** Values a too-large DLQ record is cut to, in turn, until the topic takes one. */
const CUT_SIZES = [512 * 1024, 64 * 1024, 4 * 1024, 0];

const encoder = new TextEncoder();

/**
 * The output topic a template names for `job`. Throws {@link UnnamedTopic} when a placeholder has no
 * value or the name is not a legal topic name.
 */
export function outputTopic(template: Template, job: Job): string {
  const { text, missing } = renderTemplate(template, (path) => lookup(job, path));
  if (missing.length) {
    throw new UnnamedTopic(`topic template "${template.source}" has no value for ${missing.join(", ")}`);
  }
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(text) || text === "." || text === "..") {
    throw new UnnamedTopic(`topic template "${template.source}" gives "${text}", not a legal topic name`);
  }
  return text;
}

/** A publish template that names no usable topic for a message. */
export class UnnamedTopic extends Error {
  override name = "UnnamedTopic";
}

/** The JSON envelope written to the responses topic. */
export function replyEnvelope(job: Job): Record<string, unknown> {
  const { ctx, reply, route } = job;
  return {
    pipeline: ctx.pipeline,
    route: route?.name ?? null,
    // `completed`, or `input-required` / `auth-required`: the task asks, and waits for an answer.
    status: reply?.state ?? "completed",
    source: {
      topic: ctx.topic,
      partition: ctx.partition,
      offset: ctx.offset,
      key: ctx.key,
      timestamp: ctx.timestamp,
    },
    // A credential in an agent URL stays out of the record (see registerUrlSecrets).
    agent: { url: reply?.url ? redact(reply.url) : null, prompt_id: jobAgent(job)?.promptId ?? null },
    request: { text: job.text ?? null, message_id: ctx.messageId },
    reply: {
      text: reply?.text ?? null,
      data: replyData(reply?.parts ?? []),
      parts: reply?.parts ?? [],
      task_id: reply?.taskId ?? null,
      context_id: reply?.contextId ?? null,
      ...(reply?.approvalRequests ? { approval_requests: reply.approvalRequests } : {}),
    },
    // A task that stopped to ask: its question is the reply, answered on `answer_to.topic`.
    ...(reply?.answerTo
      ? {
        answer_to: {
          topic: reply.answerTo.topic,
          key: reply.answerTo.key,
          question: reply.answerTo.question,
          deadline: reply.answerTo.deadline,
        },
      }
      : {}),
    // What it answered, for the reply of a task that asked.
    ...(job.answer?.waiting ? { answered: { task_id: job.answer.taskId, topic: job.record.topic } } : {}),
    attempts: reply?.attempts ?? 0,
    latency_ms: reply?.latencyMs ?? 0,
    ...(job.window ? { window: windowSummary(job) } : {}),
  };
}

/** A window's span and events, as the envelope gives them: where its first and last event are. */
function windowSummary(job: Job): Record<string, unknown> {
  const { start, end, members } = job.window!;
  const at = (event: Job) => ({ partition: event.ctx.partition, offset: event.ctx.offset });
  return { start, end, count: members.length, first: at(members[0]), last: at(members[members.length - 1]) };
}

/**
 * The reply record: the source key, the envelope as JSON (or, with `publish.format: text`, the
 * reply text alone; with avro or json-schema, `encoded`: see {@link RegisteredReplies}), the
 * correlation headers and the next hop count of a chain.
 */
export function replyRecord(job: Job, encoded?: Uint8Array): OutRecord {
  const value = encoded ??
    encoder.encode(job.pipeline.publish.format === "text" ? job.reply!.text : jsonText(replyEnvelope(job)));
  // An answer's reply is its message's: keyed as that message was.
  const kept = job.answer?.waiting?.original.key;
  return {
    key: kept === undefined ? job.record.key : kept === null ? null : Buffer.from(kept, "base64"),
    value,
    headers: { ...correlationHeaders(job), "x-hop-count": String(hopCount(job.ctx) + 1) },
  };
}

/** The first data part of a reply (JSON an agent returned as data), or null. */
function replyData(parts: readonly unknown[]): unknown {
  const part = parts.find((p) => (p as { kind?: string })?.kind === "data") as { data?: unknown } | undefined;
  return part?.data ?? null;
}

/** Headers every output record carries, tying it to its source message. */
export function correlationHeaders(job: Job): Record<string, string> {
  const { ctx } = job;
  return {
    "x-correlation-id": ctx.correlationId,
    "x-source-topic": ctx.topic,
    "x-source-partition": String(ctx.partition),
    "x-source-offset": ctx.offset,
    "x-pipeline": ctx.pipeline,
    ...(job.route ? { "x-route": job.route.name } : {}),
    ...(traceparentOf(job) ? { traceparent: traceparentOf(job)! } : {}),
  };
}

/**
 * The DLQ record for a failed job: original key, bytes and headers, plus error headers. A header
 * without a value (null) goes out empty, named in `x-null-headers`: kafkajs cannot write a null one.
 */
export function dlqRecord(job: Job, now = new Date()): OutRecord {
  const problem = job.failure!;
  const { headers, nulls } = writableHeaders(job.record.headers);
  // A task that failed after it asked: the record is its message's, as kept while it waited.
  const waiting = job.answer?.waiting;
  const original = waiting && {
    key: waiting.original.key === null ? null : Buffer.from(waiting.original.key, "base64"),
    // A value too large to keep is not replaced by the answer's: replayed, that would be a new event.
    value: waiting.original.value === null ? new Uint8Array() : Buffer.from(waiting.original.value, "base64"),
    headers: {
      ...waiting.source.headers,
      "x-answer-topic": job.record.topic,
      "x-answer-offset": job.record.offset,
      ...(waiting.original.value === null ? { "x-original-size": String(waiting.original.size) } : {}),
    },
  };
  return {
    key: original ? original.key : job.record.key,
    value: (original ? original.value : job.record.value) ?? new Uint8Array(),
    headers: {
      ...(original ? original.headers : headers),
      ...(!original && nulls.length ? { "x-null-headers": nulls.join(",") } : {}),
      ...correlationHeaders(job),
      "x-error-stage": problem.stage,
      "x-error-class": problem.class,
      // Header values are bytes on the wire; keep them short and on one line.
      "x-error-message": problem.message.replace(/\s+/g, " ").slice(0, 1000),
      "x-error-attempts": String(problem.attempts),
      ...(problem.taskId ? { "x-task-id": problem.taskId } : {}),
      "x-failed-at": now.toISOString(),
    },
  };
}

/** Source headers as kafkajs can write them: null values empty, their names listed. */
function writableHeaders(source: Job["record"]["headers"]): { headers: OutRecord["headers"]; nulls: string[] } {
  const headers: OutRecord["headers"] = {};
  const nulls: string[] = [];
  const empty = new Uint8Array();
  for (const [name, value] of Object.entries(source)) {
    const values = [value].flat();
    if (values.includes(null)) nulls.push(name);
    const bytes = values.map((v) => v ?? empty);
    headers[name] = Array.isArray(value) ? bytes : bytes[0];
  }
  return { headers, nulls };
}

/**
 * Publishes one job; resolves with its outcome once the broker has it. Rejects only when the broker
 * cannot be written to at all (see {@link publish}).
 */
export async function publishJob(
  job: Job,
  ctx: Sink,
  replies?: RegisteredReplies,
  encoded?: EncodedReply,
): Promise<{ job: Job; outcome: Outcome }> {
  if (job.abandoned || job.ack.stale) {
    job.abandoned = true;
    return { job, outcome: "abandoned" };
  }
  if (job.skipped) return { job, outcome: "skipped" };
  try {
    if (!job.failure) {
      const reply = await writeReply(job, ctx, replies, encoded);
      if (reply) return { job, outcome: "replied" };
    }
    return { job, outcome: job.window ? await deadLetterWindow(job, ctx) : await deadLetter(job, ctx) };
  } catch (error) {
    // Its output waited (a topic that cannot be written) until the job went stale or the bridge stopped.
    if (!(error instanceof Abandoned)) throw error;
    job.abandoned = true;
    return { job, outcome: "abandoned" };
  }
}

/**
 * A failed window: each event to the DLQ as if it had failed alone (its own bytes, headers and
 * source offset, so replay works per event), with the window's error and where the window was.
 * Its records are staged on the window's job, whose ack settles every event.
 */
async function deadLetterWindow(job: Job, ctx: Sink): Promise<"dead-lettered" | "dropped"> {
  const { members } = job.window!;
  const span = `${members[0].ctx.partition}@${members[0].ctx.offset}..${members[members.length - 1].ctx.offset}`;
  // On the job, not the window: a fanned-out window's copies share their window.
  const outcomes: NonNullable<Job["eventOutcomes"]> = job.eventOutcomes = [];
  for (const event of members) {
    const alone: Job = {
      ...event,
      route: job.route,
      agent: job.agent,
      failure: job.failure,
      span: job.span,
      staged: undefined,
    };
    const headers = { "x-window-events": span, "x-window-count": String(members.length) };
    outcomes.push({ job: alone, outcome: await deadLetter(alone, ctx, headers) });
    if (alone.staged) (job.staged ??= []).push(...alone.staged);
  }
  return outcomes.every((one) => one.outcome === "dropped") ? "dropped" : "dead-lettered";
}

/** Writes the reply; false (with the job failed) when it cannot be built or the topic never takes it. */
async function writeReply(
  job: Job,
  ctx: Sink,
  replies?: RegisteredReplies,
  encoded?: EncodedReply,
): Promise<boolean> {
  let topic: string, record: OutRecord;
  try {
    topic = outputTopic(job.pipeline.publish.responses, job);
    if (encoded && "error" in encoded) throw encoded.error;
    record = replyRecord(job, encoded ? encoded.value : await registeredReply(job, topic, replies));
  } catch (error) {
    if (error instanceof Abandoned) throw error;
    if (error instanceof UnnamedTopic || error instanceof UnencodableReply) {
      job.failure = failure("publish", "permanent", `reply not written: ${error.message}`, {
        attempts: attemptsOf(job),
      });
    } else contain(job, "publish", error);
    return false;
  }
  try {
    await ctx.send(topic, record, job);
    return true;
  } catch (error) {
    if (!ctx.isPermanent?.(error)) throw error;
    job.failure = failure("publish", "permanent", `reply not written: ${errorMessage(error)}`, {
      attempts: attemptsOf(job),
    });
    return false;
  }
}

/**
 * Writes replies with a registered schema (`publish.format: avro | json-schema`): the encoder,
 * and the waits for a registry that cannot answer (the reply waits; nothing is dead-lettered).
 */
export interface RegisteredReplies {
  encoder: ReplyEncoder;
  waits: RegistryWaits;
}

/** A reply's value in the wire format, encoded before its publish slot was taken; or why it could not be. */
export type EncodedReply = { value?: Uint8Array } | { error: unknown };

/** The job's reply encoded, when it has one to write; never rejects. */
async function encodeReply(job: Job, replies: RegisteredReplies): Promise<EncodedReply> {
  if (job.abandoned || job.ack.stale || job.skipped || job.failure) return {};
  try {
    return { value: await registeredReply(job, outputTopic(job.pipeline.publish.responses, job), replies) };
  } catch (error) {
    return { error };
  }
}

/** The reply's value in the wire format, for a pipeline that writes replies with a registered schema. */
async function registeredReply(job: Job, topic: string, replies?: RegisteredReplies): Promise<Uint8Array | undefined> {
  const { format, subject, autoRegister } = job.pipeline.publish;
  if (!isReplyFormat(format)) return undefined;
  // Checked at start (main.ts): a pipeline that writes registered replies needs SCHEMA_REGISTRY_URL.
  if (!replies) throw new UnencodableReply(`publish.format ${format} needs a schema registry: set SCHEMA_REGISTRY_URL`);
  const encoding = { format, subject, autoRegister };
  return await replies.waits.call(job, () => replies.encoder.encode(topic, replyEnvelope(job), encoding));
}

const attemptsOf = (job: Job) => job.reply?.attempts ?? 0;

/**
 * Writes the DLQ record, with its value cut as far as the topic needs. A DLQ topic a template
 * cannot name for this message falls back to `{source topic}.dlq`.
 */
async function deadLetter(
  job: Job,
  ctx: Sink,
  headers: Record<string, string> = {},
): Promise<"dead-lettered" | "dropped"> {
  let topic: string;
  try {
    topic = outputTopic(job.pipeline.publish.dlq, job);
  } catch {
    topic = `${job.ctx.topic}.dlq`;
  }
  const record = dlqRecord(job);
  Object.assign(record.headers, headers);
  let error: unknown;
  try {
    await ctx.send(topic, record, job);
    return "dead-lettered";
  } catch (refused) {
    if (!ctx.isPermanent?.(refused)) throw refused;
    error = refused;
  }
  for (const size of CUT_SIZES) {
    if (!ctx.isTooLarge?.(error)) break;
    if (size >= record.value.length) continue;
    try {
      await ctx.send(topic, withValueCut(record, size), job);
      return "dead-lettered";
    } catch (refused) {
      if (!ctx.isPermanent?.(refused)) throw refused;
      error = refused;
    }
  }
  job.failure = { ...job.failure!, message: `${job.failure!.message}; DLQ record refused: ${errorMessage(error)}` };
  return "dropped";
}

/** `record` with its value cut to `size` bytes and a header saying how long it was. */
export function withValueCut(record: OutRecord, size: number): OutRecord {
  return {
    ...record,
    value: record.value.subarray(0, size),
    headers: { ...record.headers, "x-value-truncated": String(record.value.length) },
  };
}

/**
 * The publish stage. Outcomes with the same ordering key are written one after another, so replies
 * keep the order of their source messages. A reply written with a registered schema is encoded
 * before it takes one of the `ctx.concurrency` slots (see {@link RegisteredReplies}). A send that fails for a reason that may pass (broker
 * unreachable after the client's own retries) ends the stream with that error: nothing is marked
 * done that is not durable, and the process stops rather than skipping ahead.
 */
export function publish(
  jobs: AsyncIterable<Job>,
  ctx: Sink,
  replies?: RegisteredReplies,
): AsyncIterable<{ job: Job; outcome: Outcome }> {
  const queue = new KeyedQueue(ctx.concurrency ?? 1_000);
  const turns = new Turns();
  return mapUnordered(jobs, (job) => {
    const key = orderingKey(job);
    if (!replies || !isReplyFormat(job.pipeline.publish.format)) {
      return queue.add(key, () => publishJob(job, ctx, replies));
    }
    // A registered reply is encoded before it takes a slot, so a registry outage holds none that other
    // pipelines' outcomes need; one after another per ordering key, so replies keep their order.
    return turns.take(key, async () => {
      const encoded = await encodeReply(job, replies);
      return { published: queue.add(key, () => publishJob(job, ctx, replies, encoded)) };
    }).then(({ published }) => published);
  });
}
