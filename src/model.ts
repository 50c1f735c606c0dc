/**
 * @module
 * The data that travels between stages. A {@link Job} is one source message on its way through one
 * pipeline; each stage fills in the next field or records a failure, and a job that failed or was
 * skipped passes the later stages untouched until publish writes its outcome.
 */
import type { StageFailure } from "./errors.ts";
import type { Span } from "@opentelemetry/api";
import type { PipelineExample } from "./config/pipeline_schema.ts";
import type { Template } from "./template.ts";

/** A message as consumed: bytes and metadata, kept unchanged for the DLQ. */
export interface SourceRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  /** Header values as bytes (null: a header without a value); a repeated header keeps every value. */
  readonly headers: Readonly<Record<string, HeaderValue | HeaderValue[]>>;
  /** Milliseconds since the epoch, as Kafka gives it. */
  readonly timestamp: string;
}

/** A header value as Kafka carries it: bytes, or null (producers such as Java's may send a header without a value). */
export type HeaderValue = Uint8Array | null;

/** A partition of a topic. */
export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** Identifies a partition in maps and sets. */
export function partitionId(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/** The partition a {@link partitionId} names; undefined for any other text (a topic's name). */
export function partitionOf(id: string): { topic: string; partition: number } | undefined {
  const split = id.lastIndexOf("\u0000");
  return split < 0 ? undefined : { topic: id.slice(0, split), partition: Number(id.slice(split + 1)) };
}

/** A run of records from one partition, in offset order. */
export interface Batch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly SourceRecord[];
  /** The partition's log end offset when the batch was fetched (for lag). */
  readonly highWatermark?: string;
  /** The ack of a job made from one of the records (see src/delivery/ledger.ts); none outside the bridge. */
  readonly ack?: (offset: string, pipeline: string) => Ack;
}

/** Where a message came from and where it is going: read by every stage, re-derived by none. */
export interface MessageContext {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  /** Header values as text; the first value of a repeated header; a header without a value is left out. */
  readonly headers: Readonly<Record<string, string>>;
  /** ISO 8601. */
  readonly timestamp: string;
  readonly pipeline: string;
  /** Deterministic per source message and pipeline, so agents can de-duplicate redeliveries. */
  readonly messageId: string;
  /** The source's `x-correlation-id` header, else the message id. */
  readonly correlationId: string;
}

/** An agent's answer, reduced to what the envelope carries. */
export interface AgentReply {
  readonly text: string;
  readonly parts: readonly unknown[];
  readonly taskId: string | null;
  readonly contextId: string | null;
  readonly attempts: number;
  readonly latencyMs: number;
  readonly url: string;
  /** Times the message was sent again under a new id because the agent had already seen its id. */
  readonly resent?: number;
  /** `completed`, or the task stopped to ask (its question is the text and parts). */
  readonly state?: "completed" | "input-required" | "auth-required";
  /** What Archestra asks to approve (a task's `metadata.approvalRequests`), as given. */
  readonly approvalRequests?: readonly unknown[];
  /** Tells one question of a task from the next (see `questionOf` in src/a2a/send_message.ts). */
  readonly question?: string;
  /** Where the answer to a question goes: topic, key (the task id), the question, and when the task is given up. */
  readonly answerTo?: {
    readonly topic: string;
    readonly key: string;
    readonly question: string;
    readonly deadline: string;
  };
}

/** An answer to a task that asked, as it came and, once met, with the task it answers. */
export interface Answer {
  /** The task id: the answer record's key. */
  readonly taskId: string;
  /** A waiting task's timeout, written by the bridge itself: cancel the task if it still waits. */
  readonly timeout: boolean;
  /** The answer: approval decisions (Archestra) or a text. Set once the body is read. */
  approvals?: readonly { readonly approvalId: string; readonly approved: boolean }[];
  text?: string;
  /** Decides every approval the task waits on (or, to a task that asks in text, says `approved`/`denied`). */
  approved?: boolean;
  /** The question it answers (`answer_to.question`), where the answer names it. */
  question?: string;
  /** The task it answers, once found (src/a2a/asking_tasks.ts). */
  waiting?: WaitingTask;
}

/** Where an answer record is on its answers topic. */
export interface AnswerPosition {
  readonly partition: number;
  readonly offset: string;
}

/** A task that asked and waits for its answer, as kept in the bridge's table. */
export interface WaitingTask {
  readonly taskId: string;
  readonly contextId: string | null;
  /** The endpoint that owns the task, and the route's agent. */
  readonly url: string;
  readonly agent: { readonly promptId?: string; readonly url?: string };
  readonly route: string;
  /** The message that started the task: where its replies and failures go. */
  readonly source: MessageContext;
  /**
   * That message's key and value (base64; the value left out over 256 KiB, its size given), so a
   * task that fails after its answer dead-letters the message itself.
   */
  readonly original: { readonly key: string | null; readonly value: string | null; readonly size: number };
  /** The question it waits on (see AgentReply.question). */
  readonly question: string;
  /** The approvals it waits on (Archestra's `approvalRequests`), for an answer that decides them all. */
  readonly approvalIds?: readonly string[];
  /** The answer record after which it asked this question: that record and those before it are handled. */
  readonly askedAfter?: AnswerPosition;
  /** The answer record being sent into the task for this question (written before it is sent). */
  readonly answeredBy?: AnswerPosition;
  readonly answersTopic: string;
  /** When it is given up: cancelled and dead-lettered (ISO 8601). */
  readonly deadline: string;
}

/** A record to produce: a reply envelope or a DLQ record. */
export interface OutRecord {
  key: Uint8Array | null;
  value: Uint8Array;
  /** kafkajs cannot write a header without a value (see `dlqRecord` in src/stages/publish.ts). */
  headers: Record<string, Uint8Array | Uint8Array[] | string>;
}

/** One source message in one pipeline. */
export interface Job {
  readonly record: SourceRecord;
  /** An answer's job takes on the context of the message whose task it answers (src/stages/answers.ts). */
  ctx: MessageContext;
  readonly pipeline: Pipeline;
  /** Its handle on the ledger: settled with its outcome; stale work is dropped (Kafka delivers it again). */
  readonly ack: Ack;
  value?: unknown;
  route?: Route;
  /** The agent this job calls: the route's only one, or one of several (see src/stages/fan_out.ts). */
  agent?: AgentTarget;
  text?: string;
  reply?: AgentReply;
  failure?: StageFailure;
  /** No route matched and the pipeline skips such messages. */
  skipped?: boolean;
  /** Given up at shutdown before it finished: neither published nor committed, so seen again. */
  abandoned?: boolean;
  /** Its agent call's pass through the call gate (see src/delivery/call_gate.ts): released once its outcome is settled. */
  callPass?: () => void;
  /** Its OpenTelemetry span, while tracing is on (see src/ops/tracing.ts). */
  span?: Span;
  /** With exactly-once delivery: the records written for this job, waiting for its transaction. */
  staged?: StagedRecord[];
  /** A window's job: the events it holds (see src/stages/window.ts). */
  window?: WindowOf;
  /** A record of an answers topic: an answer to a task that asked, or a waiting task's timeout. */
  answer?: Answer;
  /** A failed window's job: its events, each as it went to the DLQ (or was dropped). Set by publish. */
  eventOutcomes?: { readonly job: Job; readonly outcome: "dead-lettered" | "dropped" }[];
}

/** What a window's job carries besides its first event's context. */
export interface WindowOf {
  /** The window key: the events' Kafka key (`by: key`), or their partition number (`by: partition`). */
  readonly key: string | null;
  /** When it opened (its first event came) and closed, ISO 8601. */
  readonly start: string;
  readonly end: string;
  /** Its events in offset order, each a job of its own with its own ack. */
  readonly members: readonly Job[];
  /** The members rendered (`transform.each`), one per line: set by transform. */
  events?: string;
}

/** A route's tumbling windows: per key or per partition, closed after `sizeMs` or at `maxEvents`. */
export interface WindowSpec {
  readonly by: "key" | "partition";
  readonly sizeMs: number;
  readonly maxEvents: number;
}

/**
 * A pipeline's cap on unfinished messages: its own `delivery.max_in_flight`, else the process's
 * cap shared evenly among `pipelines`, and never below a fixed concurrency (its agent calls need
 * them; an `auto` limit stays under the share instead).
 */
export function pipelineCap(pipeline: Pipeline, pipelines: number, maxInFlight: number): number {
  const share = Math.max(1, Math.floor(maxInFlight / pipelines));
  const { concurrency } = pipeline.delivery;
  return pipeline.delivery.maxInFlight ?? (concurrency === "auto" ? share : Math.max(concurrency, share));
}

/**
 * How many pipelines' replies in a row a message is (its `x-hop-count` header, which every reply
 * carries one higher than its source): 0 for an event from outside.
 */
export function hopCount(ctx: MessageContext): number {
  const hops = Number(ctx.headers["x-hop-count"] ?? "0");
  return Number.isInteger(hops) && hops > 0 ? hops : 0;
}

/** The agent a job calls (once it has a route): its own, after a fan-out, else its route's first. */
export function jobAgent(job: Job): AgentTarget | undefined {
  return job.agent ?? job.route?.agents[0];
}

/** How many source events a job stands for: a window's events, else its one message. */
export function eventCount(job: Job): number {
  return job.window?.members.length ?? 1;
}

/** Whether a job still has work ahead of it (not failed, skipped or abandoned). */
export function isLive(job: Job): boolean {
  return job.failure === undefined && !job.skipped && !job.abandoned;
}

/**
 * The order a job must keep: jobs with the same ordering key run one after another. `undefined`
 * means none (ordering `none`, or a message without a key under `key` ordering).
 */
export function orderingKey(job: Job): string | undefined {
  // Answers to one task (and its timeouts) go one at a time, whatever the pipeline's ordering.
  if (job.answer) return `answers\u0000${job.answer.taskId}`;
  // The parts of a fanned-out message run side by side: order holds per agent.
  const agent = job.agent ? `\u0000${job.agent.promptId ?? job.agent.url}` : "";
  switch (job.pipeline.delivery.ordering) {
    case "key":
      return job.ctx.key === null ? undefined : `${job.ctx.topic}\u0000${job.ctx.key}${agent}`;
    case "partition":
      return `${job.ctx.topic}\u0000${job.ctx.partition}${agent}`;
    case "none":
      return undefined;
  }
}

/** Where a route sends its calls: an Archestra prompt, or any A2A endpoint. */
export type AgentTarget =
  | {
    readonly promptId: string;
    /** The A2A version to call it with (its route's `invoke.a2a`), which picks Archestra's endpoint. */
    readonly a2a?: "0.3" | "1.0";
    readonly url?: undefined;
    readonly token?: undefined;
  }
  | { readonly url: string; readonly token?: string; readonly promptId?: undefined; readonly a2a?: undefined };

/** A limit that protects an agent, over every pipeline that calls it. */
export interface AgentLimit {
  readonly agent: AgentTarget;
  readonly concurrency?: number;
  readonly rate?: { readonly calls: number; readonly perMs: number };
}

/** A validated route, ready to run. */
export interface Route {
  readonly name: string;
  readonly match: {
    readonly topics?: readonly string[];
    readonly headers?: Readonly<Record<string, string>>;
    readonly fields?: Readonly<Record<string, string | number | boolean | null>>;
  };
  readonly template?: Template;
  /** With a window: how each event becomes a line of `{$events}` (default: its JSON). */
  readonly each?: Template;
  /** Many events, one call: see src/stages/window.ts. */
  readonly window?: WindowSpec;
  readonly onMissing: "error" | "empty";
  /** One agent, or several called in parallel (each reply published on its own). */
  readonly agents: readonly AgentTarget[];
  readonly timeoutMs: number;
  /** Use `message/stream` where the agent's card offers it. */
  readonly stream: boolean;
  /** The agent's tasks run long: send without blocking, record the task at once, poll it. */
  readonly longRunning: boolean;
  /** The A2A version to speak, whatever the endpoint or card says. */
  readonly a2a?: "0.3" | "1.0";
  /** `key`: one A2A conversation (contextId) per Kafka key; `none`: every call on its own. */
  readonly context: "key" | "none";
  /** Where answers to a task that asks arrive, and how long it may wait (see src/stages/answers.ts); none: DLQ. */
  readonly answers?: { readonly topic: Template; readonly timeoutMs: number };
}

/** A validated pipeline, ready to run. */
export interface Pipeline {
  readonly name: string;
  /** The file it was read from, for messages. */
  readonly file: string;
  readonly topics: readonly string[];
  readonly decode: "json" | "text" | "bytes";
  /** How records are encoded: the schema registry's wire format (avro, protobuf, json-schema), `auto`, or `json` (see `decode`). */
  readonly format: "auto" | "json" | "avro" | "protobuf" | "json-schema";
  readonly routes: readonly Route[];
  readonly unmatched: "skip" | "dlq";
  readonly publish: {
    readonly responses: Template;
    readonly dlq: Template;
    /** How a reply is written: the JSON envelope, the reply text, or the envelope with a registered schema. */
    readonly format: "envelope" | "text" | "avro" | "json-schema";
    /** With avro or json-schema: where the reply schema is registered (see src/registry/reply_schema.ts). */
    readonly subject: "topic" | "record" | "topic-record";
    readonly autoRegister: boolean;
  };
  readonly delivery: {
    readonly guarantee: "at-least-once" | "exactly-once";
    readonly ordering: "key" | "partition" | "none";
    /** A fixed cap on calls in flight, or `auto`: a limit per agent endpoint found from its answers. */
    readonly concurrency: number | "auto";
    /** The most calls in flight this pipeline makes: the fixed cap, or the highest an `auto` limit may reach. */
    readonly maxConcurrency: number;
    /** Its own cap on unfinished messages; by default a share of the process's (see {@link pipelineCap}). */
    readonly maxInFlight?: number;
    readonly retries: { readonly max: number; readonly backoffMs: number; readonly maxBackoffMs: number };
  };
  /** Limits on agents, shared by every pipeline that calls them. */
  readonly agentLimits: readonly AgentLimit[];
  /** A message that is the reply of this many pipelines in a row goes to the DLQ as a loop. */
  readonly maxHops: number;
  /** Events with what they must become; see src/pipeline_examples.ts. */
  readonly examples: readonly PipelineExample[];
}

/** A record to write in the transaction that commits its message's offset. */
export interface StagedRecord {
  readonly topic: string;
  readonly record: OutRecord;
}

/** A job's handle on the ledger (compare a Benthos transaction travelling with its message). */
export interface Ack {
  /** The assignment changed since the job was consumed: Kafka delivers its message again, drop the work. */
  readonly stale: boolean;
  /**
   * Fires when the job goes stale (its partition revoked, or any other assignment change): every
   * wait and call of its work ends then, so a stale job never calls its agent again.
   */
  readonly signal: AbortSignal;
  /** The job becomes `1 + extra` jobs: the acks of the extra ones, or undefined when stale. */
  split(extra: number): Ack[] | undefined;
  /**
   * One durable outcome of the job's message (or, with exactly-once delivery, records staged for
   * the transaction that will commit its offset). `taskKey` names an agent task to forget once the
   * message is committed. Ignored when stale.
   */
  done(staged?: readonly StagedRecord[], taskKey?: string): void;
}

const encoder = new TextEncoder();

/**
 * An upper bound of the bytes `record` takes in a Kafka record batch (magic v2, no compression): how
 * the ledger counts what waits to be committed, and how writers split their batches.
 */
export function recordBytes(record: OutRecord): number {
  // Length, attributes, timestamp and offset deltas (varints, at most 21 bytes), key and value lengths.
  let size = 21 + 10 + (record.key?.length ?? 0) + record.value.length + 5;
  for (const [name, value] of Object.entries(record.headers)) {
    for (const one of [value].flat()) {
      size += 10 + encoder.encode(name).length + (typeof one === "string" ? encoder.encode(one).length : one.length);
    }
  }
  return size;
}
