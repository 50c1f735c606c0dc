/**
 * publish: writes each job's outcome to Kafka and yields it once the broker has acknowledged it.
 * A reply goes to the responses topic (default `{$topic}.responses`) as a JSON envelope with the
 * source key; a failure goes to the DLQ topic (default `{$topic}.dlq`) with the original key, bytes
 * and headers plus `x-error-*` headers. Skipped and abandoned jobs are passed on unwritten.
 *
 * @example
 * ```ts
 * import { publish } from "./publish.ts";
 * // for await (const outcome of publish(invoke(...), { send: (topic, record) => producer.send(...) }))
 * //   tracker.done(outcome.job)
 * ```
 */
import { errorMessage, failure } from "../errors.ts";
import { hopCount, type Job, jobAgent, orderingKey, type OutRecord } from "../model.ts";

export type { OutRecord };
import { traceparentOf } from "../ops/tracing.ts";
import { redact } from "../secrets.ts";
import { lookup } from "../placeholders.ts";
import { renderTemplate, type Template } from "../template.ts";
import { mapUnordered } from "../util/concurrent.ts";
import { KeyedQueue } from "../util/keyed_queue.ts";

/** The Kafka side of publish, as the kafkajs adapter provides it. */
export interface PublishContext {
  /**
   * Produces one record of `job` and resolves once the broker has acknowledged it (acks=all), or,
   * with exactly-once delivery, once it is staged for the job's transaction.
   */
  send(topic: string, record: OutRecord, job: Job): Promise<void>;
  /** Whether a send error can never succeed (e.g. record too large): the job goes to the DLQ. */
  isPermanent?(error: unknown): boolean;
  /** Sends in flight at once. */
  concurrency?: number;
  /** Whether a job still belongs to the current generation; stale jobs are abandoned unwritten. */
  isCurrent?: (job: Job) => boolean;
}

/** What happened to a job. */
export type Outcome = "replied" | "dead-lettered" | "skipped" | "abandoned";

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
    source: {
      topic: ctx.topic,
      partition: ctx.partition,
      offset: ctx.offset,
      key: ctx.key,
      timestamp: ctx.timestamp,
    },
    // A credential in an agent URL stays out of the record (see urlWithSecrets).
    agent: { url: reply?.url ? redact(reply.url) : null, prompt_id: jobAgent(job)?.promptId ?? null },
    request: { text: job.text ?? null, message_id: ctx.messageId },
    reply: {
      text: reply?.text ?? null,
      data: replyData(reply?.parts ?? []),
      parts: reply?.parts ?? [],
      task_id: reply?.taskId ?? null,
      context_id: reply?.contextId ?? null,
    },
    attempts: reply?.attempts ?? 0,
    latency_ms: reply?.latencyMs ?? 0,
  };
}

/**
 * The reply record: the source key, the envelope as JSON (or, with `publish.format: text`, the
 * reply text alone), the correlation headers and the next hop count of a chain.
 */
export function replyRecord(job: Job): OutRecord {
  const value = job.pipeline.publish.format === "text" ? job.reply!.text : JSON.stringify(replyEnvelope(job));
  return {
    key: job.record.key,
    value: encoder.encode(value),
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

/** The DLQ record for a failed job: original key, bytes and headers, plus error headers. */
export function dlqRecord(job: Job, now = new Date()): OutRecord {
  const problem = job.failure!;
  return {
    key: job.record.key,
    value: job.record.value ?? new Uint8Array(),
    headers: {
      ...job.record.headers,
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

/** Publishes one job; resolves with its outcome once the broker has it. */
export async function publishJob(job: Job, ctx: PublishContext): Promise<{ job: Job; outcome: Outcome }> {
  if (job.abandoned || (ctx.isCurrent && !ctx.isCurrent(job))) {
    job.abandoned = true;
    return { job, outcome: "abandoned" };
  }
  if (job.skipped) return { job, outcome: "skipped" };
  if (!job.failure) {
    try {
      await ctx.send(outputTopic(job.pipeline.publish.responses, job), replyRecord(job), job);
      return { job, outcome: "replied" };
    } catch (error) {
      if (!(error instanceof UnnamedTopic) && !ctx.isPermanent?.(error)) throw error;
      job.failure = failure("publish", "permanent", `reply not written: ${errorMessage(error)}`, {
        attempts: job.reply?.attempts ?? 0,
      });
    }
  }
  await ctx.send(outputTopic(job.pipeline.publish.dlq, job), dlqRecord(job), job);
  return { job, outcome: "dead-lettered" };
}

/**
 * The publish stage. Outcomes with the same ordering key are written one after another, so replies
 * keep the order of their source messages. A send that fails for a reason that may pass (broker
 * unreachable after the client's own retries) ends the stream with that error: nothing is marked
 * done that is not durable, and the process stops rather than skipping ahead.
 */
export function publish(
  jobs: AsyncIterable<Job>,
  ctx: PublishContext,
): AsyncIterable<{ job: Job; outcome: Outcome }> {
  const queue = new KeyedQueue(ctx.concurrency ?? 1_000);
  return mapUnordered(jobs, (job) => queue.add(orderingKey(job), () => publishJob(job, ctx)));
}
