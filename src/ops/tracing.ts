/**
 * @module
 * One OpenTelemetry span per message and pipeline, from consume to publish, through Deno's built-in
 * OpenTelemetry (`OTEL_DENO=true`, exported over OTLP as `OTEL_EXPORTER_OTLP_*` configure it). A
 * `traceparent` header on the source message makes the span its child; the span's own traceparent
 * goes to the agent with the call and onto the reply and DLQ records, so one trace runs from the
 * producer through the agent to whoever consumes the reply.
 *
 * Without OpenTelemetry enabled nothing is recorded, and a source `traceparent` is passed on as it
 * came, so the agent and downstream consumers still see the producer's trace.
 *
 * @example
 * ```ts
 * import { endMessageSpan, startMessageSpan, traceparentOf } from "./tracing.ts";
 * import type { Job, MessageContext } from "../model.ts";
 * const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; // the producer's
 * const ctx: MessageContext = { topic: "orders.events", partition: 0, offset: "7", key: null, headers: { traceparent },
 *   timestamp: "", pipeline: "orders", messageId: "m", correlationId: "m" };
 * const job = { ctx } as Job;
 * startMessageSpan(job); // at dispatch
 * const sent = traceparentOf(job); // on the agent call, the reply and the DLQ record: the span's, or the source's
 * if (sent?.split("-")[1] !== "4bf92f3577b34da6a3ce929d0e0e4736") throw new Error("the producer's trace goes on");
 * endMessageSpan(job, "replied"); // once its outcome is written
 * if (job.span) throw new Error("ended");
 * ```
 */
import { context, propagation, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { type Job, jobAgent } from "../model.ts";
import { redact } from "../secrets.ts";
import type { Outcome } from "../delivery/ports.ts";

const tracer = trace.getTracer("agentstream");

/** Starts the job's span, as a child of the source message's `traceparent` when it has one. */
export function startMessageSpan(job: Job): void {
  const { ctx } = job;
  // From the root, never from context.active(): the stages run inside other messages' calls, and
  // a message without a traceparent must start a trace of its own, not join a stranger's.
  const parent = propagation.extract(ROOT_CONTEXT, ctx.headers);
  const span = tracer.startSpan(`process ${ctx.topic}`, {
    kind: SpanKind.CONSUMER,
    attributes: {
      "messaging.system": "kafka",
      "messaging.operation.type": "process",
      "messaging.destination.name": ctx.topic,
      "messaging.destination.partition.id": String(ctx.partition),
      "messaging.kafka.offset": Number(ctx.offset),
      "messaging.message.id": ctx.messageId,
      "agentstream.pipeline": ctx.pipeline,
    },
  }, parent);
  if (span.isRecording()) job.span = span;
}

/** The `traceparent` to send on for a job: its span's, else the source message's own, if any. */
export function traceparentOf(job: Job): string | undefined {
  if (!job.span) return job.ctx.headers.traceparent;
  const { traceId, spanId, traceFlags } = job.span.spanContext();
  return `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, "0")}`;
}

/**
 * The `traceparent` header for the agent call, if we set it ourselves: while tracing, Deno's fetch
 * instrumentation adds its own (a child span of the job's), and a second value would be invalid.
 */
export function agentCallTraceparent(job: Job): string | undefined {
  return job.span ? undefined : traceparentOf(job);
}

/** Runs `call` with the job's span active, so Deno's fetch span for the agent call is its child. */
export function withJobSpan<T>(job: Job, call: () => T): T {
  return job.span ? context.with(trace.setSpan(context.active(), job.span), call) : call();
}

/** Ends the job's span with its route, agent and outcome. */
export function endMessageSpan(job: Job, outcome: Outcome): void {
  // A window's events end with it (once: its fanned-out copies share them).
  for (const member of job.window?.members ?? []) endMessageSpan(member, outcome);
  const span: Span | undefined = job.span;
  job.span = undefined;
  if (!span) return;
  const agent = jobAgent(job);
  span.setAttributes({
    "agentstream.route": job.route?.name ?? "",
    "agentstream.agent": agent ? agent.promptId ?? redact(agent.url) : "",
    "agentstream.outcome": outcome,
    ...(job.reply ? { "agentstream.attempts": job.reply.attempts } : {}),
  });
  if (job.failure) {
    span.setAttributes({ "error.type": `${job.failure.stage}/${job.failure.class}` });
    span.setStatus({ code: SpanStatusCode.ERROR, message: job.failure.message });
  }
  span.end();
}
