/**
 * @module
 * The pipeline file format, as one zod schema: the single source of truth for validation, for the
 * JSON Schema that editors use (`deno task schema`) and for the README's pipeline reference.
 *
 * @example
 * ```ts
 * import { PipelineFileSchema } from "./pipeline_schema.ts";
 * const pipeline = PipelineFileSchema.parse({
 *   name: "analytics",
 *   source: { topics: ["analytics.events"] },
 *   routes: [{ name: "analytics", invoke: { prompt_id: "p-1" } }],
 * });
 * pipeline.decode; // "json"
 * ```
 */
import { z } from "zod";
import { parseDuration } from "../util/duration.ts";
import { parseTemplate } from "../template.ts";
import { isRegistered } from "../registry/wire.ts";

const Name = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  "use letters, digits, '.', '_' and '-' only",
);

/** A duration such as `500ms`, `30s`, `2m`; a bare number means seconds. Parsed to milliseconds. */
export const Duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: "custom",
      message: `${JSON.stringify(value)} is not a duration (write e.g. 500ms, 30s or 2m)`,
    });
    return z.NEVER;
  }
  return ms;
});

const TemplateText = z.string().superRefine((source, ctx) => {
  const parsed = parseTemplate(source);
  if ("error" in parsed) ctx.addIssue({ code: "custom", message: `bad template: ${parsed.error}` });
});

const Scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const MatchSchema = z.strictObject({
  topics: z.array(z.string().min(1)).min(1).optional()
    .describe("Topic names or globs this route takes; by default every topic of the pipeline."),
  headers: z.record(z.string(), z.string()).optional()
    .describe("Kafka headers that must be present with exactly these values."),
  fields: z.record(z.string(), Scalar).optional()
    .describe("Dotted paths into the decoded value that must equal these values."),
});

const TransformSchema = z.strictObject({
  template: TemplateText.optional()
    .describe("The agent's input text; `{field}`, `{a.b}`, `{$topic}`, `{$key}`, `{$headers.x}`…"),
  each: TemplateText.optional().describe(
    "With a window: how each event becomes one line of `{$events}` (default: its JSON).",
  ),
  on_missing: z.enum(["error", "empty"]).default("error")
    .describe("A placeholder with no value: send the message to the DLQ, or render it empty."),
});

const WindowSchema = z.strictObject({
  by: z.enum(["key", "partition"]).default("key")
    .describe("One window per Kafka key, or per partition (windows never span partitions)."),
  size: Duration.refine((ms) => ms > 0 && ms <= 86_400_000, "must be more than 0 and at most 24h")
    .describe("How long a window stays open after its first event."),
  max_events: z.int().min(1).max(100_000).default(100)
    .describe("A window closes at this many events, if before `size`."),
});

/** Placeholders only a window's job has. */
const WINDOW_PLACEHOLDERS = ["$events", "$count", "$window.start", "$window.end"];

/** The window placeholders a template uses. */
function windowPlaceholders(source: string | undefined): string[] {
  const parsed = source === undefined ? undefined : parseTemplate(source);
  if (!parsed || "error" in parsed) return [];
  return parsed.parts.flatMap((part) => "path" in part && WINDOW_PLACEHOLDERS.includes(part.path) ? [part.path] : []);
}

const Url = z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" });
const oneOrMore = <T extends z.ZodType>(item: T) => z.union([item, z.array(item).min(1).max(16)]);

const InvokeSchema = z.strictObject({
  prompt_id: oneOrMore(z.string().min(1)).optional()
    .describe(
      "An Archestra prompt id: calls {ARCHESTRA_URL}/v1/a2a/{prompt_id} (/v2/ with ARCHESTRA_A2A_VERSION=1.0). A list: every one of them, in parallel, each reply published.",
    ),
  url: oneOrMore(Url).optional().describe("Any A2A JSON-RPC endpoint (or a list), instead of prompt_id."),
  token: z.string().optional()
    .describe("Bearer token for `url`; prompt_id calls use ARCHESTRA_TOKEN."),
  timeout: Duration.refine((ms) => ms > 0, "must be more than 0").prefault("60s").describe(
    "Limit for one agent call (each retry gets its own).",
  ),
  stream: z.boolean().default(false).describe(
    "Use message/stream when the agent's card says it streams (else message/send).",
  ),
  long_running: z.boolean().default(false).describe(
    "The agent answers with tasks that run long: send without blocking, record the task id at once, poll it until it ends; one still running at the timeout is cancelled and dead-lettered as `timeout`.",
  ),
  a2a: z.enum(["0.3", "1.0"]).optional().describe(
    "The A2A version to speak. For prompt_id it picks Archestra's endpoint (0.3: /v1, 1.0: /v2; default ARCHESTRA_A2A_VERSION); for url, the agent card (supportedInterfaces) decides by default.",
  ),
  answers: z.union([
    z.literal(false),
    z.strictObject({
      topic: TemplateText.refine(
        (source) => [...source.matchAll(/\{([^}]*)\}/g)].every(([, path]) => ["$topic", "$pipeline"].includes(path)),
        "may use only {$topic} and {$pipeline}: the bridge consumes it, so its name must be known before any answer",
      ).default("{$topic}.answers").describe("The answers topic (a template of {$topic} and {$pipeline})."),
      timeout: Duration.refine((ms) => ms > 0, "must be more than 0").prefault("24h")
        .describe("A task still waiting this long is cancelled and dead-lettered as input-required."),
    }),
  ]).prefault({}).describe(
    "A task that stops to ask (input-required, auth-required) publishes its question and waits for an answer on this topic, keyed by task id; false: such a task goes to the DLQ.",
  ),
  context: z.enum(["none", "key"]).default("none").describe(
    "key: messages with the same Kafka key go on in one A2A conversation (contextId): derived from the key, or minted by the agent (Archestra /v2) and kept in the tasks topic; none: independent calls.",
  ),
}).superRefine((invoke, ctx) => {
  if ((invoke.prompt_id === undefined) === (invoke.url === undefined)) {
    ctx.addIssue({ code: "custom", message: "give exactly one of prompt_id and url" });
  }
});

const RouteSchema = z.strictObject({
  name: Name.describe("The route's name, in the reply envelope and DLQ headers."),
  match: MatchSchema.optional().describe("All that is given must match; nothing means match all."),
  window: WindowSchema.optional().describe(
    "Many events, one call: the route's events are gathered per key (or partition) and sent together when the window closes.",
  ),
  transform: TransformSchema.prefault({}).describe("How the message becomes the agent's input text."),
  invoke: InvokeSchema.describe("Which agent gets the text."),
}).superRefine((route, ctx) => {
  if (!route.window) {
    for (const path of windowPlaceholders(route.transform.template)) {
      ctx.addIssue({
        code: "custom",
        path: ["transform", "template"],
        message: `{${path}} is there only for a route with a window`,
      });
    }
    if (route.transform.each !== undefined) {
      ctx.addIssue({ code: "custom", path: ["transform", "each"], message: "each is for a route with a window" });
    }
  }
  if (route.window && route.invoke.long_running) {
    ctx.addIssue({
      code: "custom",
      path: ["invoke", "long_running"],
      message:
        "not with a window: a window formed again after a restart may hold other events, so its task could not be resumed",
    });
  }
  for (const path of windowPlaceholders(route.transform.each)) {
    ctx.addIssue({
      code: "custom",
      path: ["transform", "each"],
      message: `{${path}} is the window's: each renders one event (use it in transform.template)`,
    });
  }
});

const RetriesSchema = z.strictObject({
  max: z.int().min(0).max(100).optional().describe("Retries after the first call (AGENT_MAX_RETRIES)."),
  backoff: Duration.optional().describe("First retry delay, doubled each time (AGENT_RETRY_DELAY)."),
  max_backoff: Duration.prefault("30s").describe("Longest wait between retries."),
});

const ExampleSchema = z.strictObject({
  name: z.string().optional().describe("What the example shows, for messages."),
  topic: z.string().min(1).optional()
    .describe("The source topic; by default the pipeline's first topic that is not a glob."),
  key: z.string().nullable().optional().describe("The Kafka key (default none)."),
  headers: z.record(z.string(), z.string()).optional().describe("Kafka headers."),
  value: z.unknown().optional().describe("The event: an object or array is written as JSON, a string as it is."),
  events: z.array(z.unknown()).min(1).optional().describe(
    "Instead of value, for a route with a window: the events of one window, in order (sharing key and headers).",
  ),
  schema: z.string().min(1).optional().describe(
    "With source.format avro: the Avro schema (an .avsc file, relative to this file) the value (or each event) is a record of, given as JSON as the bridge decodes it (a decimal as its digits, a timestamp as ISO 8601 text). The value must fit the schema, and is written and read back with it, so the routes see what a real record would give them.",
  ),
  expect: z.strictObject({
    route: z.string().nullable().describe("The route that must match; null: no route matches."),
    text: z.string().optional().describe("The agent text the route must produce, exactly."),
    failure: z.enum(["decode", "match", "transform"]).optional()
      .describe("The stage that must send the event to the DLQ instead."),
  }).describe("What decode, match and transform must make of the event."),
}).refine((example) => (example.value === undefined) !== (example.events === undefined), {
  message: "an example needs a value (or, for a window, events), not both",
  path: ["value"],
});

const AgentLimitSchema = z.strictObject({
  prompt_id: z.string().min(1).optional().describe("The agent, by Archestra prompt id…"),
  url: Url.optional().describe("…or by endpoint."),
  concurrency: z.int().min(1).max(10_000).optional().describe("Calls in flight at once, over every pipeline."),
  rate: z.strictObject({
    calls: z.int().min(1).describe("At most this many calls…"),
    per: Duration.refine((ms) => ms > 0, "must be more than 0").describe("…in each interval this long."),
  }).optional().describe("Calls per interval, over every pipeline."),
}).superRefine((limit, ctx) => {
  if ((limit.prompt_id === undefined) === (limit.url === undefined)) {
    ctx.addIssue({ code: "custom", message: "give exactly one of prompt_id and url" });
  }
});

/** One `pipelines/*.yaml` file. */
export const PipelineFileSchema = z.strictObject({
  name: Name.describe("The pipeline's name, unique across files; in envelopes, headers and message ids."),
  description: z.string().optional().describe("Free text for people."),
  source: z.strictObject({
    topics: z.array(z.string().min(1)).min(1)
      .describe("Exact topic names or globs: `*` within a dot segment, `**` across segments."),
    format: z.enum(["auto", "json", "avro", "protobuf", "json-schema"]).default("auto").describe(
      "How records are encoded. auto: the schema registry's wire format (a zero byte and a schema id) is decoded with its registered schema when SCHEMA_REGISTRY_URL is set, anything else as `decode` says; avro, protobuf, json-schema: every record is in the wire format with a schema of that kind (needs SCHEMA_REGISTRY_URL); json: never the registry.",
    ),
  }).describe("Where messages come from."),
  decode: z.enum(["json", "text", "bytes"]).default("json")
    .describe(
      "How message bytes become a value: JSON, UTF-8 text, or base64 text. With source.format avro, protobuf or json-schema: json only (their records decode to JSON-like values).",
    ),
  routes: z.array(RouteSchema).min(1).describe("Tried in order; the first that matches wins."),
  unmatched: z.enum(["skip", "dlq"]).default("skip")
    .describe("A message no route matches: count and skip it, or dead-letter it."),
  publish: z.strictObject({
    responses: TemplateText.default("{$topic}.responses").describe("Topic for replies (a template)."),
    dlq: TemplateText.default("{$topic}.dlq").describe("Topic for failures (a template)."),
    format: z.enum(["envelope", "json", "text", "avro", "json-schema"]).default("envelope")
      .describe(
        "envelope (or json): the JSON envelope; text: the reply text alone, for simple consumers; avro, json-schema: the envelope in the schema registry's wire format, with the reply schema shipped in config/schemas/ registered under `subject` (needs SCHEMA_REGISTRY_URL).",
      ),
    subject: z.enum(["topic", "record", "topic-record"]).default("topic").describe(
      "With avro or json-schema: the subject the reply schema is under. topic: `<responses topic>-value` (TopicNameStrategy); record: `io.agentstream.Reply` (RecordNameStrategy); topic-record: `<responses topic>-io.agentstream.Reply`.",
    ),
    auto_register: z.boolean().default(true).describe(
      "With avro or json-schema: register the reply schema under its subject when it is not there. false: it must be registered already; a reply whose subject lacks it goes to the DLQ.",
    ),
  }).prefault({}).describe("Where outcomes go."),
  agent_limits: z.array(AgentLimitSchema).default([]).describe(
    "Limits that protect an agent (the model behind it): shared by every pipeline that calls it; the same agent may not get two different limits.",
  ),
  chain: z.strictObject({
    max_hops: z.int().min(1).max(100).default(8)
      .describe(
        "A message that is already the reply of this many pipelines in a row (x-hop-count) goes to the DLQ as a loop.",
      ),
  }).prefault({}).describe("Limits for pipelines that consume other pipelines' replies."),
  delivery: z.strictObject({
    guarantee: z.enum(["at-least-once", "exactly-once"]).default("at-least-once")
      .describe(
        "exactly-once: replies, DLQ records and offsets in one Kafka transaction (for read_committed readers).",
      ),
    ordering: z.enum(["key", "partition", "none"]).default("key")
      .describe("Messages handled one after another: with the same key, in the same partition, or none."),
    concurrency: z.union([z.literal("auto"), z.int().min(1).max(10_000)]).default("auto")
      .describe(
        "Agent calls in flight at once. auto: a limit per agent endpoint that follows its capacity (see Throughput); a number: a fixed cap.",
      ),
    max_concurrency: z.int().min(1).max(10_000).default(256)
      .describe("With concurrency auto: the most calls in flight at once it may reach (agent_limits cap it too)."),
    max_in_flight: z.int().min(1).max(1_000_000).optional()
      .describe(
        "Jobs of this pipeline consumed and not yet finished (a message fanned out to n agents counts n); at this many its topics pause, so one slow agent cannot hold the process's whole KAFKA_MAX_IN_FLIGHT. Default: KAFKA_MAX_IN_FLIGHT shared evenly among the pipelines, at least concurrency (max_concurrency with auto).",
      ),
    retries: RetriesSchema.prefault({}).describe("Retries of transient agent failures (timeouts, 429, 5xx)."),
  }).prefault({}).describe("How messages are worked on."),
  examples: z.array(ExampleSchema).default([])
    .describe("Events with the route and agent text they must produce: checked offline at start and by validate."),
}).superRefine((pipeline, ctx) => {
  const { format } = pipeline.source;
  if (isRegistered(format) && pipeline.decode !== "json") {
    ctx.addIssue({
      code: "custom",
      path: ["decode"],
      message:
        `${pipeline.decode} contradicts source.format ${format}: a registered record decodes to a value as JSON does (leave decode out)`,
    });
  }
  pipeline.examples.forEach((example, index) => {
    if (example.schema !== undefined && format !== "avro") {
      ctx.addIssue({
        code: "custom",
        path: ["examples", index, "schema"],
        message: `an Avro schema is for a pipeline whose source.format is avro, not ${format}`,
      });
    }
  });
  const seen = new Set<string>();
  pipeline.routes.forEach((route, index) => {
    const cap = pipeline.delivery.max_in_flight;
    if (route.window && cap !== undefined && route.window.max_events > cap) {
      ctx.addIssue({
        code: "custom",
        path: ["routes", index, "window", "max_events"],
        message: `${route.window.max_events} is more than delivery.max_in_flight (${cap}): a window could never fill`,
      });
    }
    if (seen.has(route.name)) {
      ctx.addIssue({
        code: "custom",
        path: ["routes", index, "name"],
        message: `route name "${route.name}" is used twice`,
      });
    }
    seen.add(route.name);
  });
});

export type PipelineFile = z.output<typeof PipelineFileSchema>;
export type PipelineExample = PipelineFile["examples"][number];

/** One route of the old bridge's `config/routes.json`. */
export const SeedRouteSchema = z.object({
  name: Name,
  topic_pattern: z.string().min(1),
  prompt_id: z.string().min(1),
  header_match: z.record(z.string(), z.string()).nullish(),
  field_match: z.record(z.string(), Scalar).nullish(),
  transform_template: TemplateText.nullish(),
});

/** The old bridge's `config/routes.json`: a list of routes. */
export const SeedRoutesSchema = z.array(SeedRouteSchema).min(1);
