/** Runs the bridge in-process on the test broker, against a demo agent, with pipelines written inline. */
import { type Bridge, startBridge } from "../../src/bridge.ts";
import { parsePipelineText } from "../../src/config/load_pipelines.ts";
import type { Pipeline } from "../../src/model.ts";
import { createKafka } from "../../src/kafka/client.ts";
import { loadSettings } from "../../src/config/settings.ts";
import { testKafka, uniqueId } from "./kafka.ts";

/** Parses pipeline YAML texts, failing the test on any problem. */
export function pipelinesFrom(texts: string[], env: Record<string, string> = {}): Pipeline[] {
  return texts.flatMap((text, index) => {
    const { pipelines, problems } = parsePipelineText(`test-${index}.yaml`, text, env, {
      maxRetries: 3,
      retryDelayMs: 50,
    });
    if (problems.length) throw new Error(problems.join("\n"));
    return pipelines;
  });
}

/**
 * A pipeline file's text: `topic` sent as it is to one agent (`prompt_id`), with `invoke` options
 * (e.g. `timeout: 60s`) and `extra` top-level lines (delivery, agent_limits).
 */
export function onePromptPipeline(name: string, topic: string, promptId: string, extra = "", invoke = ""): string {
  const options = invoke ? `, ${invoke}` : "";
  return `name: ${name}\nsource: { topics: [${topic}] }\n` +
    `routes: [{ name: r, invoke: { prompt_id: ${promptId}${options} } }]\n${extra}`;
}

export interface TestBridgeOptions {
  pipelines: Pipeline[];
  archestraUrl: string;
  /** The A2A version prompt ids are called with (ARCHESTRA_A2A_VERSION), default 0.3: it picks /v1 or /v2. */
  archestraA2a?: "0.3" | "1.0";
  archestraToken?: string;
  groupId?: string;
  topicRefreshMs?: number;
  maxInFlight?: number;
  /** KAFKA_MAX_UNCOMMITTED_BYTES (default: the setting's). */
  maxUncommittedBytes?: number;
  probeDelayMs?: number;
  maxProbeDelayMs?: number;
  /** KAFKA_COMMIT_INTERVAL (default 200 ms: tests see commits soon). */
  commitIntervalMs?: number;
  /** AGENT_SHUTDOWN_GRACE (default 5 s). */
  shutdownGraceMs?: number;
  /** SCHEMA_REGISTRY_URL and its credentials (default: none). */
  schemaRegistry?: { url: string; username?: string; password?: string; token?: string };
  /** KAFKA_SSL_CA_FILE, with Kafka itself on PLAINTEXT: the trust an https:// registry shares. */
  kafkaCaFile?: string;
}

/** Starts a bridge; `stop()` it at the end of the test. */
export async function startTestBridge(options: TestBridgeOptions): Promise<Bridge & { groupId: string }> {
  const { brokers } = await testKafka();
  const settings = loadSettings({ LOG_LEVEL: "WARNING" });
  const groupId = options.groupId ?? `bridge-${uniqueId()}`;
  const bridge = await startBridge({
    kafka: createKafka(settings, brokers),
    brokers,
    pipelines: options.pipelines,
    settings: {
      ...settings,
      groupId,
      archestraA2a: options.archestraA2a ?? "0.3",
      archestraToken: options.archestraToken,
      topicRefreshMs: options.topicRefreshMs ?? 60_000,
      commitIntervalMs: options.commitIntervalMs ?? 200,
      shutdownGraceMs: options.shutdownGraceMs ?? 5_000,
      maxInFlight: options.maxInFlight ?? settings.maxInFlight,
      maxUncommittedBytes: options.maxUncommittedBytes ?? settings.maxUncommittedBytes,
      schemaRegistryUrl: options.schemaRegistry?.url,
      schemaRegistryUsername: options.schemaRegistry?.username,
      schemaRegistryPassword: options.schemaRegistry?.password,
      schemaRegistryToken: options.schemaRegistry?.token,
      sslCaFile: options.kafkaCaFile,
    },
    archestraUrl: options.archestraUrl,
    probeDelayMs: options.probeDelayMs,
    maxProbeDelayMs: options.maxProbeDelayMs,
  });
  return Object.assign(bridge, { groupId });
}
