/**
 * @module
 * The reply envelope's registered schemas, shipped with the project: Avro ({@link REPLY_AVRO_SCHEMA})
 * and JSON Schema ({@link REPLY_JSON_SCHEMA}), written to config/schemas/ by `deno task docs` for a
 * platform team that registers them itself (`publish.auto_register: false`). The Avro envelope
 * has the JSON envelope's fields and names; the free-form ones (`reply.data`, `reply.parts`,
 * `reply.approval_requests`) are JSON text in it, as Avro has no type for any JSON value.
 *
 * @example
 * ```ts
 * import { avroReply, REPLY_AVRO_SCHEMA } from "./reply_schema.ts";
 * import avro from "avsc";
 * const envelope = {
 *   pipeline: "orders", route: "triage", status: "completed",
 *   source: { topic: "orders", partition: 0, offset: "7", key: null, timestamp: "2026-01-01T00:00:00.000Z" },
 *   agent: { url: null, prompt_id: "p-1" }, request: { text: "Order 7", message_id: "m-7" },
 *   reply: { text: "done", data: { ok: true }, parts: [], task_id: null, context_id: null },
 *   attempts: 1, latency_ms: 12,
 * };
 * const type = avro.Type.forSchema(REPLY_AVRO_SCHEMA);
 * const back = type.fromBuffer(type.toBuffer(avroReply(envelope)));
 * if (JSON.parse(back.reply.data).ok !== true || back.window !== null) throw new Error("round trip");
 * ```
 */
import type avsc from "avsc";

/** The reply schema's full name (its subject under `publish.subject: record`). */
export const REPLY_RECORD_NAME = "io.agentstream.Reply";

type AvroField = { name: string; type: avsc.Schema; default?: null; doc?: string };
const field = (name: string, type: avsc.Schema, doc?: string): AvroField => ({ name, type, ...(doc ? { doc } : {}) });
const optionalField = (name: string, type: Exclude<avsc.schema.AvroSchema, unknown[]>, doc?: string): AvroField => ({
  ...field(name, ["null", type], doc),
  default: null,
});

/** The reply envelope in Avro (see the module comment). */
export const REPLY_AVRO_SCHEMA: avsc.Schema = {
  type: "record",
  name: "Reply",
  namespace: "io.agentstream",
  doc: "An agent's reply to one event (or one window of events), written by agentstream.",
  fields: [
    field("pipeline", "string"),
    optionalField("route", "string"),
    field("status", "string", "completed, or input-required / auth-required: the task asks (see answer_to)."),
    field("source", {
      type: "record",
      name: "Source",
      fields: [
        field("topic", "string"),
        field("partition", "int"),
        field("offset", "string"),
        optionalField("key", "string", "The source record's key as UTF-8 text."),
        field("timestamp", "string", "ISO 8601."),
      ],
    }),
    field("agent", {
      type: "record",
      name: "Agent",
      fields: [optionalField("url", "string"), optionalField("prompt_id", "string")],
    }),
    field("request", {
      type: "record",
      name: "Request",
      fields: [optionalField("text", "string"), field("message_id", "string")],
    }),
    field("reply", {
      type: "record",
      name: "ReplyBody",
      fields: [
        optionalField("text", "string"),
        optionalField("data", "string", "The first data part, as JSON text."),
        field("parts", "string", "Every part of the reply, as JSON text (an array)."),
        optionalField("task_id", "string"),
        optionalField("context_id", "string"),
        optionalField("approval_requests", "string", "What the agent asks to approve, as JSON text (an array)."),
      ],
    }),
    optionalField("answer_to", {
      type: "record",
      name: "AnswerTo",
      fields: [
        field("topic", "string"),
        field("key", "string"),
        field("question", "string"),
        field("deadline", "string"),
      ],
    }, "Where the answer to a task that asks goes."),
    optionalField("answered", {
      type: "record",
      name: "Answered",
      fields: [field("task_id", "string"), field("topic", "string")],
    }, "The task this reply answers, for the reply of a task that asked."),
    field("attempts", "int"),
    field("latency_ms", "long"),
    optionalField("window", {
      type: "record",
      name: "Window",
      fields: [
        field("start", "string"),
        field("end", "string"),
        field("count", "int"),
        field("first", {
          type: "record",
          name: "Position",
          fields: [field("partition", "int"), field("offset", "string")],
        }),
        field("last", "Position"),
      ],
    }, "For a window's reply: its span and where its first and last event are."),
  ],
};

const text = { type: "string" };
const nullable = (type: unknown) => ({ anyOf: [{ type: "null" }, type] });
const object = (properties: Record<string, unknown>, required = Object.keys(properties)) => ({
  type: "object",
  properties,
  required,
});
const position = object({ partition: { type: "integer" }, offset: text });

/** The reply envelope in JSON Schema (draft-07): the envelope as the JSON format writes it. */
export const REPLY_JSON_SCHEMA = {
  $schema: "http://json-schema.org/draft-07/schema#",
  title: REPLY_RECORD_NAME,
  description: "An agent's reply to one event (or one window of events), written by agentstream.",
  ...object({
    pipeline: text,
    route: nullable(text),
    status: text,
    source: object({
      topic: text,
      partition: { type: "integer" },
      offset: text,
      key: nullable(text),
      timestamp: text,
    }),
    agent: object({ url: nullable(text), prompt_id: nullable(text) }),
    request: object({ text: nullable(text), message_id: text }),
    reply: object({
      text: nullable(text),
      data: {},
      parts: { type: "array" },
      task_id: nullable(text),
      context_id: nullable(text),
      approval_requests: { type: "array" },
    }, ["text", "data", "parts", "task_id", "context_id"]),
    answer_to: object({ topic: text, key: text, question: text, deadline: text }),
    answered: object({ task_id: text, topic: text }),
    attempts: { type: "integer" },
    latency_ms: { type: "number" },
    window: object({ start: text, end: text, count: { type: "integer" }, first: position, last: position }),
  }, ["pipeline", "route", "status", "source", "agent", "request", "reply", "attempts", "latency_ms"]),
};

/** The schema files shipped in config/schemas/ (written by `deno task docs`), by path. */
export const SHIPPED_SCHEMAS = {
  "config/schemas/reply.avsc": REPLY_AVRO_SCHEMA,
  "config/schemas/reply.schema.json": REPLY_JSON_SCHEMA,
};

type Envelope = Record<string, unknown>;

/** The JSON envelope as the Avro schema has it: every optional field there (null), free-form fields as JSON text. */
export function avroReply(envelope: Envelope): Envelope {
  const reply = envelope.reply as Envelope;
  const json = (value: unknown) => value === undefined || value === null ? null : JSON.stringify(value);
  return {
    ...envelope,
    route: envelope.route ?? null,
    reply: {
      text: reply.text ?? null,
      data: json(reply.data),
      parts: JSON.stringify(reply.parts ?? []),
      task_id: reply.task_id ?? null,
      context_id: reply.context_id ?? null,
      approval_requests: json(reply.approval_requests),
    },
    answer_to: envelope.answer_to ?? null,
    answered: envelope.answered ?? null,
    window: envelope.window ?? null,
  };
}
