/**
 * @module
 * Process settings from the environment, derived from one zod schema: its fields are the names the
 * code uses, each field's metadata the variable it is read from (and the old names still read),
 * its description the docs. Each name starts with the part it configures: `ARCHESTRA_` (the agent
 * host), `AGENT_` (how agents are called), `KAFKA_` (the cluster, the group, topics and commits),
 * `SCHEMA_REGISTRY_`, `PIPELINES_`, `LOG_`, `METRICS_`, `DEMO_`. Durations carry their unit (`500ms`, `5s`, `2m`).
 * Empty values count as unset, as compose files often leave them.
 *
 * @example
 * ```ts
 * import { loadSettings } from "./settings.ts";
 * const deprecated: string[] = [];
 * const settings = loadSettings({ AGENT_RETRY_DELAY: "500ms", MAX_RETRIES: "5" }, (line) => deprecated.push(line));
 * if (settings.retryDelayMs !== 500 || settings.maxRetries !== 5) throw new Error("not read");
 * if (!deprecated[0]?.includes("use AGENT_MAX_RETRIES")) throw new Error("the old name was not reported");
 * ```
 */
import { z } from "zod";
import { FatalError } from "../errors.ts";
import { registerSecret } from "../secrets.ts";
import { parseByteSize } from "../util/byte_size.ts";

/** What a setting's metadata says about its variable. */
export interface SettingMeta {
  /** The variable it is read from. */
  env: string;
  /** Older names still read, each with one deprecation line, when `env` is unset. */
  aliases?: readonly string[];
  /** Values an old name had that mean another value now. */
  aliasValues?: Readonly<Record<string, string>>;
  /** A duration: an old name's bare number is seconds, as it was. */
  duration?: boolean;
}

const env = (name: string, more: Omit<SettingMeta, "env"> = {}) => ({ env: name, ...more });
const optional = z.string().optional();
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const duration = (fallback: string, allowZero = false) =>
  z.string().default(fallback).transform((value, ctx) => {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
    if (match && !match[2]) {
      ctx.addIssue({
        code: "custom",
        message: `"${value}" has no unit: write ${match[1]}s for seconds, or ${match[1]}ms`,
      });
      return z.NEVER;
    }
    const ms = match ? Math.round(Number(match[1]) * UNITS[match[2]]) : undefined;
    if (ms === undefined || (ms === 0 && !allowZero)) {
      ctx.addIssue({
        code: "custom",
        message: `"${value}" is not a ${allowZero ? "" : "positive "}duration (e.g. 500ms, 5s, 2m)`,
      });
      return z.NEVER;
    }
    return ms;
  }).meta({ duration: true });
const byteSize = (fallback: string) =>
  z.string().default(fallback).transform((value, ctx) => {
    const bytes = parseByteSize(value);
    if (!bytes) {
      ctx.addIssue({ code: "custom", message: `"${value}" is not a positive size (e.g. 64MiB or 1048576)` });
      return z.NEVER;
    }
    return bytes;
  });
const list = z.string().optional().transform((value) => value?.split(",").map((item) => item.trim()).filter(Boolean));

/** Every setting, by the name the code uses; the docs' table of variables comes from here. */
export const SettingsFields = z.object({
  archestraUrl: z.union([
    z.literal("demo"),
    z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL, or demo" }),
  ]).optional().meta(env("ARCHESTRA_URL")).describe(
    "Archestra (or any A2A host) base URL. Unset: the embedded demo agent, beside the embedded broker only (with KAFKA_BOOTSTRAP_SERVERS set it is an error: the demo would answer real events); demo: the embedded demo agent on purpose.",
  ),
  archestraToken: optional.meta(env("ARCHESTRA_TOKEN")).describe("Bearer token for Archestra. A secret: never logged."),
  archestraA2a: z.enum(["0.3", "1.0"]).default("0.3").meta(
    env("ARCHESTRA_A2A_VERSION", { aliases: ["ARCHESTRA_A2A_API"], aliasValues: { v1: "0.3", v2: "1.0" } }),
  ).describe(
    "The A2A version prompt_id routes speak, unless a route sets invoke.a2a; it picks Archestra's endpoint: 0.3 calls /v1/a2a/{id}, 1.0 calls /v2/a2a/{id}.",
  ),
  bootstrapServers: list.meta(env("KAFKA_BOOTSTRAP_SERVERS"))
    .describe("Comma-separated brokers; unset: a local broker is started (deno task kafka:start)."),
  groupId: z.string().default("archestra-bridge").meta(env("KAFKA_GROUP_ID")).describe("Consumer group id."),
  clientId: z.string().default("agentstream").meta(env("KAFKA_CLIENT_ID")).describe("Client id the brokers see."),
  topics: list.meta(env("KAFKA_TOPICS")).describe(
    "Topics (or globs) to consume; unset: the topics of the pipelines. Messages are still routed by pipeline.",
  ),
  autoOffsetReset: z.enum(["earliest", "latest"]).default("earliest").meta(env("KAFKA_AUTO_OFFSET_RESET"))
    .describe("Where a partition with no committed offset starts."),
  sessionTimeoutMs: duration("30s").meta(env("KAFKA_SESSION_TIMEOUT"))
    .describe("How long the group waits for a silent member (a crashed bridge) before its partitions move."),
  transactionalId: optional.meta(env("KAFKA_TRANSACTIONAL_ID")).describe(
    "With exactly-once pipelines: the prefix of the transactional ids, one per input partition ({prefix}-{topic}-{partition}, or {prefix}/{topic}/{partition} where either name has a hyphen); the same on every replica of the group (default: the group id).",
  ),
  outputTopicPartitions: z.union([z.literal("source"), z.literal("broker"), z.coerce.number().int().min(1)])
    .default("source").meta(env("KAFKA_OUTPUT_TOPIC_PARTITIONS", { aliases: ["OUTPUT_TOPIC_PARTITIONS"] })).describe(
      "Partitions of the output topics the bridge creates (responses, DLQ, answers): source (its source topic's count, so a reply lands in its message's partition number), broker (the broker's num.partitions), or a number.",
    ),
  outputTopicReplicationFactor: z.coerce.number().int().min(1).optional()
    .meta(env("KAFKA_OUTPUT_TOPIC_REPLICATION_FACTOR", { aliases: ["OUTPUT_TOPIC_REPLICATION_FACTOR"] })).describe(
      "Replication factor of the output topics the bridge creates; unset: the broker's default.replication.factor.",
    ),
  tasksTopic: z.string().default("__agentstream.tasks").meta(env("KAFKA_TASKS_TOPIC", { aliases: ["TASKS_TOPIC"] }))
    .describe(
      "Compacted topic shared by replicas: agent tasks still running (a restarted bridge polls them instead of sending again), tasks waiting for answers, and the conversations agents minted for keys.",
    ),
  topicRefreshMs: duration("5s").meta(env("KAFKA_TOPIC_REFRESH"))
    .describe("How often globs are matched again against the broker's topics."),
  commitIntervalMs: duration("1s").meta(env("KAFKA_COMMIT_INTERVAL", { aliases: ["COMMIT_INTERVAL"] }))
    .describe("How often finished offsets are committed."),
  maxInFlight: z.coerce.number().int().min(1).default(1000).meta(
    env("KAFKA_MAX_IN_FLIGHT", { aliases: ["MAX_IN_FLIGHT"] }),
  )
    .describe("Messages consumed but not yet finished; at this many, fetching pauses until half are done."),
  maxUncommittedBytes: byteSize("64MiB")
    .meta(env("KAFKA_MAX_UNCOMMITTED_BYTES", { aliases: ["MAX_UNCOMMITTED_BYTES"] })).describe(
      "What may wait behind unfinished messages for their partitions' commit points (finished messages, and with exactly-once their replies); at this much, the partitions holding most pause until their commit points move. The default fits a 512 MiB container.",
    ),
  securityProtocol: z.enum(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
    .default("PLAINTEXT").meta(env("KAFKA_SECURITY_PROTOCOL")).describe("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."),
  saslMechanism: z.enum(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]).default("PLAIN").meta(env("KAFKA_SASL_MECHANISM"))
    .describe("PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)."),
  saslUsername: optional.meta(env("KAFKA_SASL_USERNAME")).describe("SASL user name."),
  saslPassword: optional.meta(env("KAFKA_SASL_PASSWORD")).describe("A secret: never logged."),
  sslCaFile: optional.meta(env("KAFKA_SSL_CA_FILE"))
    .describe("With SSL/SASL_SSL: PEM file of the CA(s) to trust; unset: the system's."),
  sslCertFile: optional.meta(env("KAFKA_SSL_CERT_FILE"))
    .describe("With SSL/SASL_SSL: PEM client certificate, for brokers that require one."),
  sslKeyFile: optional.meta(env("KAFKA_SSL_KEY_FILE")).describe("The client certificate's PEM private key."),
  schemaRegistryUrl: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" }).optional()
    .meta(env("SCHEMA_REGISTRY_URL")).describe(
      "A schema registry with Confluent's API (Confluent, Apicurio's /apis/ccompat/v7, Karapace): records in its wire format are decoded with their registered schemas (see docs/schema-registry.md). Unset: none.",
    ),
  schemaRegistryUsername: optional.meta(env("SCHEMA_REGISTRY_USERNAME"))
    .describe("Basic-auth user name for the schema registry."),
  schemaRegistryPassword: optional.meta(env("SCHEMA_REGISTRY_PASSWORD"))
    .describe("Basic-auth password for the schema registry. A secret: never logged."),
  schemaRegistryToken: optional.meta(env("SCHEMA_REGISTRY_TOKEN"))
    .describe("Bearer token for the schema registry, instead of basic auth. A secret: never logged."),
  schemaRegistryCaFile: optional.meta(env("SCHEMA_REGISTRY_SSL_CA_FILE")).describe(
    "With an https:// SCHEMA_REGISTRY_URL: PEM file of the CA(s) to trust beside the system's. Unset: KAFKA_SSL_CA_FILE's, where set.",
  ),
  maxRetries: z.coerce.number().int().min(0).max(100).default(3).meta(
    env("AGENT_MAX_RETRIES", { aliases: ["MAX_RETRIES"] }),
  )
    .describe("Agent call retries after the first attempt, unless a pipeline sets its own."),
  retryDelayMs: duration("1s", true).meta(env("AGENT_RETRY_DELAY", { aliases: ["RETRY_DELAY"] }))
    .describe("First retry delay, doubled on each retry."),
  circuitFailures: z.coerce.number().int().min(1).default(5)
    .meta(env("AGENT_CIRCUIT_FAILURES", { aliases: ["CIRCUIT_FAILURES"] })).describe(
      "Failures in a row from one agent endpoint, that are evidence of an outage, that open its circuit (its topics pause).",
    ),
  shutdownGraceMs: duration("30s", true).meta(env("AGENT_SHUTDOWN_GRACE", { aliases: ["SHUTDOWN_GRACE"] }))
    .describe("On SIGTERM, how long calls in flight may finish; the rest stay uncommitted for the next run."),
  routesConfigFile: optional.meta(env("PIPELINES_ROUTES_FILE", { aliases: ["ROUTES_CONFIG_FILE"] }))
    .describe("A routes file in the Python bridge's JSON format (see docs/migration.md)."),
  pipelinesDir: z.string().default("pipelines").meta(env("PIPELINES_DIR"))
    .describe("Where pipeline files (*.yaml) are read from; several directories: comma-separated."),
  logLevel: z.string().default("INFO").transform((value, ctx) => {
    const level = ({
      TRACE: "trace",
      DEBUG: "debug",
      INFO: "info",
      WARN: "warning",
      WARNING: "warning",
      ERROR: "error",
      CRITICAL: "fatal",
      FATAL: "fatal",
    } as const)[value.toUpperCase()];
    if (!level) {
      ctx.addIssue({ code: "custom", message: `"${value}" is not one of DEBUG, INFO, WARNING, ERROR` });
      return z.NEVER;
    }
    return level;
  }).meta(env("LOG_LEVEL")).describe("DEBUG, INFO, WARNING or ERROR."),
  summaryIntervalMs: duration("30s", true).meta(env("LOG_SUMMARY_INTERVAL")).describe(
    "How often a progress line (replies, DLQ records, rate) is logged at INFO; 0s: never. Lines per message are DEBUG.",
  ),
  logFormat: z.enum(["json", "pretty"]).optional().meta(env("LOG_FORMAT"))
    .describe("json lines, or readable lines; unset: pretty on a terminal, json otherwise."),
  metricsPort: z.coerce.number().int().min(0).max(65535).default(9464).meta(env("METRICS_PORT"))
    .describe("Port for /metrics (Prometheus), /healthz and /readyz; 0: any free port (logged)."),
  metricsHost: z.string().default("0.0.0.0").meta(env("METRICS_HOST")).describe("Address the metrics port listens on."),
  demoAgentPort: z.coerce.number().int().min(0).max(65535).default(0).meta(env("DEMO_AGENT_PORT"))
    .describe("Port of the embedded demo agent (when ARCHESTRA_URL is unset or demo); 0: any free port."),
});

/** The settings, with what follows from them: the demo agent answers, or an agent host is given. */
export const SettingsSchema = SettingsFields.transform(({ archestraUrl, ...settings }) => ({
  ...settings,
  /** Unset where the embedded demo agent answers (see `demoAgent`). */
  archestraUrl: archestraUrl === "demo" ? undefined : archestraUrl?.replace(/\/+$/, ""),
  /**
   * The embedded demo agent answers: ARCHESTRA_URL unset beside the embedded broker, or `demo`. With
   * neither this nor `archestraUrl` (a configured broker, no agent URL) the bridge must not start.
   */
  demoAgent: archestraUrl === "demo" || (archestraUrl === undefined && settings.bootstrapServers === undefined),
}));

/** Settings with the names the code uses. */
export type Settings = z.output<typeof SettingsSchema>;

/** The metadata of each setting, by the name the code uses. */
export function settingMetas(): [field: string, meta: SettingMeta][] {
  return Object.entries(SettingsFields.shape).map((
    [field, schema],
  ) => [field, schema.meta() as unknown as SettingMeta]);
}

/** The variables the bridge reads, by their current names. */
export function settingNames(): string[] {
  return settingMetas().map(([, meta]) => meta.env);
}

/**
 * Variables a deployment (compose, Helm) must set: unset, they mean the embedded local broker and
 * demo agent, which only `deno task start` on a laptop wants.
 */
export const DEPLOYMENT_REQUIRED = ["KAFKA_BOOTSTRAP_SERVERS", "ARCHESTRA_URL"] as const;

/**
 * Reads settings from `env` and registers its secrets (see {@link registerSecret}). An old name is
 * read when the current one is unset, and `deprecated` is told once for each old name set. Throws a
 * {@link FatalError} listing every bad variable as `environment:NAME: reason`.
 */
export function loadSettings(
  env: Readonly<Record<string, string | undefined>>,
  deprecated: (line: string) => void = () => {},
): Settings {
  const given = (name: string) => env[name] !== undefined && env[name] !== "" ? env[name] : undefined;
  const input: Record<string, string> = {};
  const readFrom: Record<string, string> = {};
  for (const [field, meta] of settingMetas()) {
    const value = given(meta.env);
    if (value !== undefined) [input[field], readFrom[field]] = [value, meta.env];
    for (const alias of meta.aliases ?? []) {
      const old = given(alias);
      if (old === undefined) continue;
      if (value !== undefined) {
        deprecated(`environment:${alias} is ignored: ${meta.env} is set (${alias} is its old name)`);
        continue;
      }
      deprecated(`environment:${alias} is deprecated: use ${meta.env}`);
      // An old name keeps its old meaning: its values, and bare numbers as seconds.
      const meant = meta.aliasValues?.[old] ??
        (meta.duration && /^\s*\d+(\.\d+)?\s*$/.test(old) ? `${old.trim()}s` : old);
      [input[field], readFrom[field]] = [meant, alias];
    }
  }
  const parsed = SettingsSchema.safeParse(input);
  if (!parsed.success) {
    const fields = Object.fromEntries(settingMetas().map(([field, meta]) => [field, meta.env]));
    throw new FatalError(
      parsed.error.issues.map((issue) => {
        const field = String(issue.path[0]);
        return `environment:${readFrom[field] ?? fields[field] ?? field}: ${issue.message}`;
      }),
      { config: true },
    );
  }
  registerSecret(parsed.data.archestraToken);
  registerSecret(parsed.data.saslPassword);
  registerSecret(parsed.data.schemaRegistryPassword);
  registerSecret(parsed.data.schemaRegistryToken);
  return parsed.data;
}
