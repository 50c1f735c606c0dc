/**
 * @module
 * `deno task start`: runs the bridge. With nothing configured it runs the shipped pipelines against
 * a local broker and the demo agent; each of `KAFKA_BOOTSTRAP_SERVERS` and `ARCHESTRA_URL` that is
 * set is used as given. Before consuming, every agent's card is fetched (`--no-preflight` skips it).
 * Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration.
 */
import { getLogger } from "@logtape/logtape";
import { type Bridge, startBridge } from "./bridge.ts";
import { readDotEnv } from "./config/dotenv.ts";
import { loadPipelines } from "./config/load_pipelines.ts";
import { loadSettings } from "./config/settings.ts";
import { FatalError, runCommand } from "./errors.ts";
import { preflight } from "./a2a/preflight.ts";
import type { Pipeline } from "./model.ts";
import { agentEndpoint, type Archestra } from "./a2a/endpoint.ts";
import { createKafka } from "./kafka/client.ts";
import { setupLogging } from "./log.ts";
import { createMetrics } from "./ops/metrics.ts";
import { startOpsServer } from "./ops/server.ts";
import { isRegistered, isReplyFormat } from "./registry/wire.ts";
import { isGlob } from "./util/glob.ts";

const log = getLogger(["agentstream", "main"]);

async function main(): Promise<number> {
  // The process environment wins over .env, as with docker compose.
  const env = { ...await readDotEnv(".env"), ...Deno.env.toObject() };
  const deprecated: string[] = [];
  const settings = loadSettings(env, (line) => deprecated.push(line));
  await setupLogging({ level: settings.logLevel, format: settings.logFormat });
  for (const line of deprecated) log.warn(line);
  // From the start: a SIGTERM while still starting (a pod replaced early) is a clean stop too, not
  // death by signal. Before the bridge runs, it stops the start; after, it drains the bridge.
  const started: { bridge?: Bridge } = {};
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) {
      log.warn("second signal: exiting now; unfinished messages stay uncommitted");
      Deno.exit(130);
    }
    log.info("stopping: finishing messages in flight (signal again to exit at once)");
    void started.bridge?.stop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const stopping = () => signals > 0;
  const demoAgent = settings.demoAgent;
  if (!demoAgent && settings.archestraUrl === undefined) {
    // A demo agent answering a real broker's events would commit them answered by nobody.
    throw new FatalError([
      "environment:ARCHESTRA_URL: not set, while KAFKA_BOOTSTRAP_SERVERS is: the embedded demo agent would answer real events",
      "set ARCHESTRA_URL to your Archestra (or any A2A host), or to demo to use the demo agent on purpose",
    ], { config: true });
  }
  // Embedded defaults are loaded only when used: a configured run never loads the demo agent.
  const demo = demoAgent ? await import("./agent/demo_agent.ts") : undefined;
  const pipelines = await loadPipelines(
    { routesFile: settings.routesConfigFile, dir: settings.pipelinesDir },
    demo ? { ...demo.DEMO_PROMPT_IDS, ...env } : env,
    settings,
  );
  const needRegistry = pipelines.flatMap((p) => [
    ...(!isRegistered(p.format)
      ? []
      : [`${p.file}:source.format: ${p.format} records need a schema registry: set SCHEMA_REGISTRY_URL`]),
    ...(isReplyFormat(p.publish.format)
      ? [`${p.file}:publish.format: ${p.publish.format} replies need a schema registry: set SCHEMA_REGISTRY_URL`]
      : []),
  ]);
  if (needRegistry.length && !settings.schemaRegistryUrl) throw new FatalError(needRegistry, { config: true });
  log.info("agentstream: {count} pipelines from {source}: {names}", {
    count: pipelines.length,
    source: settings.routesConfigFile ?? settings.pipelinesDir,
    names: pipelines.map((p) => p.name),
  });

  // Up before anything slow, so that a starting bridge is alive (/healthz) but not yet ready. It
  // lives as long as the process: Deno.exit ends it.
  const metrics = createMetrics();
  const ops = startOpsServer({
    port: settings.metricsPort,
    hostname: settings.metricsHost,
    metrics,
    readiness: () => started.bridge?.readiness() ?? { ready: false, starting: true },
  });
  log.info("metrics on http://{host}:{port}/metrics, probes on /healthz and /readyz", {
    host: settings.metricsHost,
    port: ops.port,
  });

  let brokers = settings.bootstrapServers;
  if (!brokers) {
    log.info("KAFKA_BOOTSTRAP_SERVERS is not set: using a local broker (embedded default)");
    const { ensureLocalBroker } = await import("./infra/local_broker.ts");
    const broker = await ensureLocalBroker({ log: (line) => log.info(line) });
    brokers = [broker.bootstrap];
  }
  log.info("Kafka at {brokers}, consumer group {group}", { brokers, group: settings.groupId });

  let archestraUrl = settings.archestraUrl;
  const agent = demo?.startDemoAgent({ port: settings.demoAgentPort, behaviours: demo.DEMO_BEHAVIOURS });
  if (agent) {
    archestraUrl = agent.url;
    log.info("ARCHESTRA_URL is not set: using the embedded demo agent at {url} (embedded default)", {
      url: agent.url,
    });
  } else {
    log.info("agents at {url} (token {token})", {
      url: archestraUrl,
      token: settings.archestraToken ? "set" : "not set",
    });
  }

  if (Deno.args.includes("--no-preflight")) log.info("--no-preflight: agent cards are not checked");
  else {
    await checkAgents(pipelines, {
      archestraUrl: archestraUrl!,
      archestraToken: settings.archestraToken,
      archestraA2a: settings.archestraA2a,
    });
  }

  const kafka = createKafka(settings, brokers);
  if (!settings.bootstrapServers) await createDemoTopics(kafka, pipelines.flatMap((p) => p.topics));
  if (stopping()) {
    await agent?.close();
    log.info("stopped before consuming anything");
    return 0;
  }
  const bridge = started.bridge = await startBridge({
    kafka,
    brokers,
    pipelines,
    settings,
    archestraUrl: archestraUrl!,
    metrics,
  });

  // A signal while it started: stop now that there is something to stop.
  if (stopping()) void bridge.stop();
  try {
    await bridge.done;
    log.info("stopped: {stats}", { stats: bridge.stats });
    return 0;
  } finally {
    await agent?.close();
  }
}

/** Fetches every agent's card; an unknown prompt id or a refused token stops the start (exit code 2). */
async function checkAgents(pipelines: Pipeline[], archestra: Archestra): Promise<void> {
  const targets = pipelines.flatMap((pipeline) =>
    pipeline.routes.flatMap((route, index) =>
      route.agents.map((agent) => ({
        ...agentEndpoint(agent, archestra),
        kind: agent.url === undefined ? "prompt" as const : "url" as const,
        where: `${pipeline.file}:routes[${index}].invoke`,
      }))
    )
  );
  const { problems, warnings, cards } = await preflight(targets);
  for (const warning of warnings) log.warn("preflight: {warning}", { warning });
  if (problems.length) throw new FatalError(problems.map((p) => `preflight: ${p}`), { config: true });
  log.info("preflight: {count} agents answered with their cards", { count: cards.size });
}

/** On the local broker, creates the pipelines' exact source topics so the demo needs no setup. */
async function createDemoTopics(kafka: ReturnType<typeof createKafka>, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const missing = [...new Set(topics)].filter((topic) => !isGlob(topic) && !existing.has(topic));
    if (missing.length) await admin.createTopics({ topics: missing.map((topic) => ({ topic })), waitForLeaders: true });
  } catch (error) {
    log.warn("could not create the demo topics: {error}", { error: String(error) });
  } finally {
    await admin.disconnect();
  }
}

if (import.meta.main) await runCommand(main);
