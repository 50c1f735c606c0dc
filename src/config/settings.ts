/**
 * @module
 * Process settings from the environment. Every variable of the old bridge keeps its name and
 * meaning; the rest are new. Empty values count as unset, as compose files often leave them.
 *
 * @example
 * ```ts
 * import { loadSettings } from "./settings.ts";
 * const settings = loadSettings({ MAX_RETRIES: "5" });
 * settings.maxRetries; // 5
 * settings.groupId; // "archestra-bridge"
 * ```
 */
import { z } from "zod";
import { FatalError } from "../errors.ts";
import { registerSecret } from "../secrets.ts";
import { parseDuration } from "../util/duration.ts";
import { parseByteSize } from "../util/byte_size.ts";

const optional = z.string().optional();
const durationMs = (fallback: string, allowZero = false) =>
  z.string().default(fallback).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || (ms === 0 && !allowZero)) {
      ctx.addIssue({ code: "custom", message: `"${value}" is not a positive duration (e.g. 1.5 or 500ms)` });
      return z.NEVER;
    }
    return ms;
  });
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

/** The environment variables we read, with their meaning; the README's table comes from here. */
export const SettingsSchema = z.object({
  ARCHESTRA_URL: z.union([
    z.literal("demo"),
    z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL, or demo" }),
  ]).optional()
    .describe(
      "Archestra (or any A2A host) base URL. Unset: the embedded demo agent, beside the embedded broker only (with KAFKA_BOOTSTRAP_SERVERS set it is an error: the demo would answer real events); demo: the embedded demo agent on purpose.",
    ),
  ARCHESTRA_TOKEN: optional.describe("Bearer token for Archestra. A secret: never logged."),
  ARCHESTRA_A2A_API: z.enum(["v1", "v2"]).default("v1").describe(
    "Archestra's A2A endpoint for prompt_id routes: v1 (/v1/a2a/{id}, A2A 0.3 shapes) or v2 (/v2/a2a/{id}, A2A 1.0).",
  ),
  KAFKA_BOOTSTRAP_SERVERS: list
    .describe("Comma-separated brokers; unset: a local broker is started (deno task kafka:start)."),
  KAFKA_GROUP_ID: z.string().default("archestra-bridge").describe("Consumer group id."),
  KAFKA_CLIENT_ID: z.string().default("agentstream").describe("Client id the brokers see."),
  KAFKA_TOPICS: list.describe(
    "Topics (or globs) to consume; unset: the topics of the pipelines. Messages are still routed by pipeline.",
  ),
  KAFKA_AUTO_OFFSET_RESET: z.enum(["earliest", "latest"]).default("earliest")
    .describe("Where a partition with no committed offset starts."),
  KAFKA_SESSION_TIMEOUT: durationMs("30s")
    .describe("How long the group waits for a silent member (a crashed bridge) before its partitions move."),
  KAFKA_TRANSACTIONAL_ID: optional.describe(
    "With exactly-once pipelines: the prefix of the transactional ids, one per input partition ({prefix}-{topic}-{partition}, or {prefix}/{topic}/{partition} where either name has a hyphen); the same on every replica of the group (default: the group id).",
  ),
  OUTPUT_TOPIC_PARTITIONS: z.union([z.literal("source"), z.literal("broker"), z.coerce.number().int().min(1)])
    .default("source").describe(
      "Partitions of the output topics the bridge creates (responses, DLQ, answers): source (its source topic's count, so a reply lands in its message's partition number), broker (the broker's num.partitions), or a number.",
    ),
  OUTPUT_TOPIC_REPLICATION_FACTOR: z.coerce.number().int().min(1).optional().describe(
    "Replication factor of the output topics the bridge creates; unset: the broker's default.replication.factor.",
  ),
  TASKS_TOPIC: z.string().default("__agentstream.tasks").describe(
    "Compacted topic shared by replicas: agent tasks still running (a restarted bridge polls them instead of sending again), tasks waiting for answers, and the conversations agents minted for keys.",
  ),
  KAFKA_TOPIC_REFRESH: durationMs("5s")
    .describe("How often globs are matched again against the broker's topics."),
  KAFKA_SECURITY_PROTOCOL: z.enum(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
    .default("PLAINTEXT").describe("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."),
  KAFKA_SASL_MECHANISM: z.enum(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]).default("PLAIN")
    .describe("PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)."),
  KAFKA_SASL_USERNAME: optional.describe("SASL user name."),
  KAFKA_SASL_PASSWORD: optional.describe("A secret: never logged."),
  KAFKA_SSL_CA_FILE: optional.describe("With SSL/SASL_SSL: PEM file of the CA(s) to trust; unset: the system's."),
  KAFKA_SSL_CERT_FILE: optional.describe("With SSL/SASL_SSL: PEM client certificate, for brokers that require one."),
  KAFKA_SSL_KEY_FILE: optional.describe("The client certificate's PEM private key."),
  LOG_LEVEL: z.string().default("INFO").describe("DEBUG, INFO, WARNING or ERROR.").transform((value, ctx) => {
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
  }),
  LOG_SUMMARY_INTERVAL: durationMs("30s", true)
    .describe(
      "How often a progress line (replies, DLQ records, rate) is logged at INFO; 0: never. Lines per message are DEBUG.",
    ),
  LOG_FORMAT: z.enum(["json", "pretty"]).optional()
    .describe("json lines, or readable lines; unset: pretty on a terminal, json otherwise."),
  MAX_RETRIES: z.coerce.number().int().min(0).max(100).default(3)
    .describe("Agent call retries after the first attempt, unless a pipeline sets its own."),
  RETRY_DELAY: durationMs("1.0", true).describe("First retry delay in seconds, doubled on each retry."),
  ROUTES_CONFIG_FILE: optional.describe("A routes file in the old bridge's JSON format."),
  PIPELINES_DIR: z.string().default("pipelines")
    .describe("Where pipeline files (*.yaml) are read from; several directories: comma-separated."),
  COMMIT_INTERVAL: durationMs("1s").describe("How often finished offsets are committed."),
  MAX_IN_FLIGHT: z.coerce.number().int().min(1).default(1000)
    .describe("Messages consumed but not yet finished; at this many, fetching pauses until half are done."),
  MAX_UNCOMMITTED_BYTES: byteSize("64MiB").describe(
    "What may wait behind unfinished messages for their partitions' commit points (finished messages, and with exactly-once their replies); at this much, the partitions holding most pause until their commit points move. The default fits a 512 MiB container.",
  ),
  SHUTDOWN_GRACE: durationMs("30s", true)
    .describe("On SIGTERM, how long calls in flight may finish; the rest stay uncommitted for the next run."),
  CIRCUIT_FAILURES: z.coerce.number().int().min(1).default(5)
    .describe(
      "Failures in a row from one agent endpoint, that are evidence of an outage, that open its circuit (its topics pause).",
    ),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464)
    .describe("Port for /metrics (Prometheus), /healthz and /readyz; 0: any free port (logged)."),
  METRICS_HOST: z.string().default("0.0.0.0").describe("Address the metrics port listens on."),
  DEMO_AGENT_PORT: z.coerce.number().int().min(0).max(65535).default(0)
    .describe("Port of the embedded demo agent (when ARCHESTRA_URL is unset or demo); 0: any free port."),
});

/**
 * Variables a deployment (compose, Helm) must set: unset, they mean the embedded local broker and
 * demo agent, which only `deno task start` on a laptop wants.
 */
export const DEPLOYMENT_REQUIRED = ["KAFKA_BOOTSTRAP_SERVERS", "ARCHESTRA_URL"] as const;

/** Settings with the names the code uses. */
export interface Settings {
  /** Unset where the embedded demo agent answers (see `demoAgent`). */
  archestraUrl?: string;
  /**
   * The embedded demo agent answers: ARCHESTRA_URL unset beside the embedded broker, or `demo`. With
   * neither this nor `archestraUrl` (a configured broker, no agent URL) the bridge must not start.
   */
  demoAgent: boolean;
  archestraToken?: string;
  archestraApi: "v1" | "v2";
  bootstrapServers?: string[];
  groupId: string;
  clientId: string;
  topics?: string[];
  autoOffsetReset: "earliest" | "latest";
  topicRefreshMs: number;
  tasksTopic: string;
  outputTopicPartitions: number | "source" | "broker";
  outputTopicReplicationFactor?: number;
  sessionTimeoutMs: number;
  transactionalId?: string;
  securityProtocol: "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL";
  saslMechanism: "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512";
  saslUsername?: string;
  saslPassword?: string;
  sslCaFile?: string;
  sslCertFile?: string;
  sslKeyFile?: string;
  logLevel: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  logFormat?: "json" | "pretty";
  maxRetries: number;
  retryDelayMs: number;
  routesConfigFile?: string;
  pipelinesDir: string;
  commitIntervalMs: number;
  summaryIntervalMs: number;
  maxInFlight: number;
  maxUncommittedBytes: number;
  shutdownGraceMs: number;
  circuitFailures: number;
  metricsPort: number;
  metricsHost: string;
  demoAgentPort: number;
}

/**
 * Reads settings from `env` and registers its secrets (see {@link registerSecret}). Throws a {@link FatalError} listing every bad variable as
 * `environment:NAME: reason`.
 */
export function loadSettings(env: Readonly<Record<string, string | undefined>>): Settings {
  const present = Object.fromEntries(
    Object.keys(SettingsSchema.shape).flatMap((name) =>
      env[name] !== undefined && env[name] !== "" ? [[name, env[name]]] : []
    ),
  );
  const parsed = SettingsSchema.safeParse(present);
  if (!parsed.success) {
    throw new FatalError(
      parsed.error.issues.map((issue) => `environment:${issue.path.join(".")}: ${issue.message}`),
      { config: true },
    );
  }
  const s = parsed.data;
  registerSecret(s.ARCHESTRA_TOKEN);
  registerSecret(s.KAFKA_SASL_PASSWORD);
  return {
    archestraUrl: s.ARCHESTRA_URL === "demo" ? undefined : s.ARCHESTRA_URL?.replace(/\/+$/, ""),
    // Unset (or empty) means the demo only beside the embedded broker: a configured one holds real events.
    demoAgent: s.ARCHESTRA_URL === "demo" || (s.ARCHESTRA_URL === undefined && s.KAFKA_BOOTSTRAP_SERVERS === undefined),
    archestraToken: s.ARCHESTRA_TOKEN,
    archestraApi: s.ARCHESTRA_A2A_API,
    bootstrapServers: s.KAFKA_BOOTSTRAP_SERVERS,
    groupId: s.KAFKA_GROUP_ID,
    clientId: s.KAFKA_CLIENT_ID,
    topics: s.KAFKA_TOPICS,
    autoOffsetReset: s.KAFKA_AUTO_OFFSET_RESET,
    topicRefreshMs: s.KAFKA_TOPIC_REFRESH,
    tasksTopic: s.TASKS_TOPIC,
    outputTopicPartitions: s.OUTPUT_TOPIC_PARTITIONS,
    outputTopicReplicationFactor: s.OUTPUT_TOPIC_REPLICATION_FACTOR,
    sessionTimeoutMs: s.KAFKA_SESSION_TIMEOUT,
    transactionalId: s.KAFKA_TRANSACTIONAL_ID,
    securityProtocol: s.KAFKA_SECURITY_PROTOCOL,
    saslMechanism: s.KAFKA_SASL_MECHANISM,
    saslUsername: s.KAFKA_SASL_USERNAME,
    saslPassword: s.KAFKA_SASL_PASSWORD,
    sslCaFile: s.KAFKA_SSL_CA_FILE,
    sslCertFile: s.KAFKA_SSL_CERT_FILE,
    sslKeyFile: s.KAFKA_SSL_KEY_FILE,
    logLevel: s.LOG_LEVEL,
    logFormat: s.LOG_FORMAT,
    maxRetries: s.MAX_RETRIES,
    retryDelayMs: s.RETRY_DELAY,
    routesConfigFile: s.ROUTES_CONFIG_FILE,
    pipelinesDir: s.PIPELINES_DIR,
    commitIntervalMs: s.COMMIT_INTERVAL,
    summaryIntervalMs: s.LOG_SUMMARY_INTERVAL,
    maxInFlight: s.MAX_IN_FLIGHT,
    maxUncommittedBytes: s.MAX_UNCOMMITTED_BYTES,
    shutdownGraceMs: s.SHUTDOWN_GRACE,
    circuitFailures: s.CIRCUIT_FAILURES,
    metricsPort: s.METRICS_PORT,
    metricsHost: s.METRICS_HOST,
    demoAgentPort: s.DEMO_AGENT_PORT,
  };
}
