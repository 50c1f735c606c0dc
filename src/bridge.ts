/**
 * @module
 * The bridge's composition root: it makes the parts in order and wires them, nothing more. The
 * consumer adapter feeds the stages (dispatch → decode → answers → match → window → transform →
 * fan-out → invoke → publish); each outcome settles its job's ack in the ledger; commits store what
 * the ledger says is done; {@link Caps} and the circuits pause through flow control; the
 * {@link Rebalance} listener handles partitions changing hands; the {@link Lifecycle} stops it all
 * in order.
 *
 * @example
 * ```ts
 * import { type BridgeOptions, startBridge } from "./bridge.ts";
 * // What src/main.ts does with a Kafka client, the pipelines and the settings (not called here: it needs a broker).
 * async function serve(options: BridgeOptions): Promise<void> {
 *   const bridge = await startBridge(options);
 *   Deno.addSignalListener("SIGTERM", () => void bridge.stop());
 *   await bridge.done; // rejects with the reason when the bridge had to stop by itself
 * }
 * if (typeof serve !== "function") throw new Error("unreachable");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { type Admin, type Kafka, Partitioners, type Producer } from "kafkajs";
import { AgentCards } from "./a2a/agent_cards.ts";
import { AgentCircuits, circuitKeysOf } from "./a2a/agent_circuits.ts";
import { agentLimitsOf } from "./a2a/agent_limits.ts";
import { AgentConcurrency } from "./a2a/agent_concurrency.ts";
import { AskingTasks } from "./a2a/asking_tasks.ts";
import { Conversations } from "./a2a/conversations.ts";
import { agentEndpoint, type Archestra } from "./a2a/endpoint.ts";
import { TaskRegistry } from "./a2a/task_registry.ts";
import { AnswerTopics } from "./answer_topics.ts";
import type { Settings } from "./config/settings.ts";
import { CallGate, releasePass } from "./delivery/call_gate.ts";
import { Caps } from "./delivery/caps.ts";
import { Commits } from "./delivery/commits.ts";
import { FlowControl, type PauseReason } from "./delivery/flow_control.ts";
import { Ledger } from "./delivery/ledger.ts";
import type { Outcome, PartitionChange, Sink, Source, TransactionalSink } from "./delivery/ports.ts";
import { Rebalance } from "./delivery/rebalance.ts";
import { dispatch, targetPipelines } from "./dispatch.ts";
import { errorMessage, FatalError } from "./errors.ts";
import { Claims, FencedTimer } from "./kafka/claims.ts";
import { KafkaTable } from "./kafka/compacted_table.ts";
import { ConsumerAdapter } from "./kafka/consumer_adapter.ts";
import { toKafkaMessage } from "./kafka/message.ts";
import { OutputTopics, UNWRITABLE_HELP } from "./kafka/output_topics.ts";
import { PartitionProducers } from "./kafka/partition_producers.ts";
import { RecordLimits } from "./kafka/record_limits.ts";
import { ensureOutputTopics, kafkaPublisher } from "./kafka/sink.ts";
import { outputTopicTest } from "./kafka/topics.ts";
import { TransactionalOutput } from "./kafka/transactions.ts";
import { Lifecycle } from "./lifecycle.ts";
import { type Batch, type Job, type OutRecord, partitionId, type Pipeline } from "./model.ts";
import { pollLogEnds } from "./ops/log_ends.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";
import {
  type BridgeStats,
  circuitReporter,
  concurrencyReporter,
  newStats,
  outputReporter,
  reportOutcome,
} from "./ops/reports.ts";
import { startSummary } from "./ops/summary.ts";
import { answers, startAnswerDeadlines } from "./stages/answers.ts";
import { decoder } from "./stages/decode.ts";
import type { Stage } from "./stages/stage.ts";
import {
  isReplyFormat,
  type RecordDecoder,
  RegistryUnavailable,
  type ReplyEncoder,
  UnencodableReply,
} from "./registry/wire.ts";
import { RegistryWaits } from "./stages/registry_waits.ts";
import type { RegistrySettings } from "./registry/client.ts";
import { renderTemplate } from "./template.ts";
import { fanOut } from "./stages/fan_out.ts";
import { invoke } from "./stages/invoke.ts";
import { match } from "./stages/match.ts";
import { publish, type RegisteredReplies } from "./stages/publish.ts";
import { transform } from "./stages/transform.ts";
import { window } from "./stages/window.ts";
import { pipe } from "./util/pipe.ts";

export type { BridgeStats } from "./ops/reports.ts";

const log = getLogger(["agentstream", "bridge"]);

/** The longest a resubscription waits for calls in flight to finish; the rest are made again. */
const MAX_DRAIN_MS = 5 * 60_000;

export interface BridgeOptions {
  kafka: Kafka;
  /** For messages only: where the kafka client connects. */
  brokers: readonly string[];
  pipelines: readonly Pipeline[];
  settings:
    & Pick<
      Settings,
      | "groupId"
      | "topics"
      | "autoOffsetReset"
      | "topicRefreshMs"
      | "sessionTimeoutMs"
      | "commitIntervalMs"
      | "archestraToken"
      | "archestraA2a"
      | "maxInFlight"
      | "maxUncommittedBytes"
      | "shutdownGraceMs"
      | "circuitFailures"
      | "transactionalId"
      | "tasksTopic"
    >
    & Partial<Pick<Settings, "outputTopicPartitions" | "outputTopicReplicationFactor">>
    & Partial<Pick<Settings, "summaryIntervalMs">>
    & Partial<RegistrySettings>;
  archestraUrl: string;
  /** First pause before probing an agent whose circuit is open (default 1 s, doubling up to the max). */
  probeDelayMs?: number;
  /** Longest pause between probes (default `MAX_PROBE_DELAY_MS`, 10 s): bounds how long a recovered agent waits to be noticed. */
  maxProbeDelayMs?: number;
  /** Where the bridge reports what it does (default: a registry of its own, see {@link Bridge.metrics}). */
  metrics?: Metrics;
}

/** What `/readyz` reports: each check, and whether all of them pass. */
export interface Readiness {
  ready: boolean;
  /** The consumer is a member of its group (so the brokers answer), or waits for its topics to exist. */
  kafka: boolean;
  /** No agent has its circuit open: none fails every call, none refuses the bridge. */
  agents: boolean;
  /** Every output topic written to so far can be written (none missing, none denied by an ACL). */
  outputs: boolean;
  /** The output topics that cannot be written, with why (only while there are). */
  unwritable?: { topic: string; reason: string }[];
  /** Topics consumed now. */
  topics: number;
}

export interface Bridge {
  readonly stats: Readonly<BridgeStats>;
  readonly metrics: Metrics;
  /** Whether the bridge is doing its work now. */
  readiness(): Readiness;
  /** The topics consumed now. */
  readonly topics: () => readonly string[];
  /** Matches globs against the broker's topics now, instead of at the next refresh. */
  refreshTopics(): Promise<void>;
  /** Stops fetching, finishes (or after the grace period abandons) work in flight, commits, disconnects. */
  stop(): Promise<void>;
  /** Settles when the bridge has stopped: rejects with the reason it had to stop by itself. */
  readonly done: Promise<void>;
}

/** Connects to Kafka and starts consuming. Throws a {@link FatalError} when Kafka cannot be reached. */
export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const { kafka, pipelines, settings } = options;
  const archestra: Archestra = { ...settings, archestraUrl: options.archestraUrl };
  const limits = agentLimitsOf(pipelines, archestra);
  const life = new Lifecycle({ graceMs: settings.shutdownGraceMs });
  const fatal = (error: unknown) =>
    void life.stop(error instanceof FatalError ? error : new FatalError(errorMessage(error)));
  const metrics = options.metrics ?? createMetrics();
  const stats = newStats();
  const answerTopics = new AnswerTopics(pipelines);
  const targets = (topic: string) => targetPipelines(pipelines, topic, answerTopics);
  const probes = { probeDelayMs: options.probeDelayMs, maxProbeDelayMs: options.maxProbeDelayMs };

  // The schema registry, where one is configured: its credentials are checked before anything else.
  const registry = await openRegistry(settings);
  if (registry) await prepareReplySubjects(pipelines, registry);

  // Kafka: the admin, the consumer (which flow control pauses), then the clients that write.
  const admin = await connected(options, kafka.admin());
  const consumer = consumerFor(options, admin, answerTopics);
  const flow = new FlowControl();
  const outputs = new OutputTopics({
    ...probes,
    onChange: outputReporter({ metrics }, UNWRITABLE_HELP),
    onHolding: (topic, holding) => flow.set({ kind: "output", topic }, holding),
  });
  const fenced = new FencedTimer({ sessionTimeoutMs: settings.sessionTimeoutMs, fatal });
  const { producer, table, transactional } = await connectWriters(options, admin, outputs, () => fenced.fenced());
  // Running tasks, keys' conversations and tasks that asked: one compacted topic the replicas share.
  const [tasks, conversations, asking] = [new TaskRegistry(table), new Conversations(table), new AskingTasks(table)];

  // Delivery: the ledger, the caps on what it holds, commits of what it says is done.
  const ledger = new Ledger({ forgetTask: (key) => table.delete(key), rememberFinished: !transactional });
  metrics.inFlightFrom(() => ledger.pending);
  metrics.uncommittedFrom(() => ledger.uncommittedBytes);
  const caps = capsFor({ ledger, flow, pipelines, targets, settings, stats, metrics });
  const commits = new Commits({
    ledger,
    write: (commit) => transactional ? transactional.commit(commit) : consumer.commit(commit.offsets),
    losesRecords: transactional !== undefined,
    fatal,
    // Commit points moved: partitions paused for what they held may resume.
    onCommitted: ({ offsets }) => (metrics.committed(offsets), caps.check(true)),
  });
  Object.defineProperties(stats, {
    commits: { get: () => commits.stored },
    commitChecks: { get: () => commits.checks },
  });

  // Agents: circuits per host and endpoint (their topics pause while one is open), adaptive limits.
  const circuits = new AgentCircuits({
    ...probes,
    threshold: settings.circuitFailures,
    onChange: circuitReporter({ metrics, stats }),
    // Paused while messages wait on the circuit; with none waiting, the next message comes in to probe.
    onHolding: (key, holding) => flow.set({ kind: "circuit", key }, holding),
  });
  const concurrency = new AgentConcurrency({
    capOf: (url) => limits.concurrencyOf(url),
    onChange: concurrencyReporter({ metrics }),
  });
  flow.attach({
    topicsOf: pauseCoverage({ pipelines, archestra, targets, outputs, consumed: () => consumer.topics }),
    apply: (paused) => consumer.setPaused(paused),
  });

  // Partitions changing hands (and exactly-once claims after a join), the resubscription's drain.
  const gate = new CallGate();
  const rebalance = new Rebalance({
    ledger,
    commits,
    caps,
    flow,
    gate,
    drainMs: drainMs(pipelines),
    stopping: life.stopping,
  });
  rebalance.onChange(rebalanceCounter(consumer, stats, metrics));
  if (transactional) {
    const claims = new Claims({
      commits,
      flow,
      claim: (assigned) => transactional.claim(assigned),
      seekToCommitted: (partitions) => consumer.seekToCommitted(partitions),
      fenced,
      stopping: life.stopping,
      fatal,
    });
    rebalance.onChange(({ kind, assigned }) => kind === "join" && assigned && void claims.claim(assigned));
  }
  consumer.attach({
    onBatch: intake({ ledger, targets, stats, metrics, caps }),
    room: (topic, partition) => caps.room(topic, partition),
    rebalance,
  });

  // The stages, from the consumer's batches to each outcome settled.
  const renewed: Producer[] = [];
  const publisher = transactional?.sink() ??
    kafkaPublisher(replyWriter(kafka, admin, producer, renewed), outputs, life.stopping);
  const decodeStage = decoder({ registry, stopping: life.stopping });
  const replies = registry &&
    { encoder: registry, waits: new RegistryWaits(registry.url, "replies", { stopping: life.stopping }) };
  const stages = { pipelines, answerTopics, asking, caps, rebalance, publisher, replies, decode: decodeStage };
  const outcomes = stagesOf(stages, (jobs) =>
    invoke(jobs, {
      ...archestra,
      signal: life.cut,
      stopping: life.stopping,
      circuitFor: circuits.agent,
      hostCircuitFor: circuits.host,
      tasks,
      conversations,
      asking,
      limits,
      concurrency,
      cards: new AgentCards(),
      gate,
    }), consumer.batches());
  const run = (async () => {
    for await (const { job, outcome } of outcomes) {
      // Its call (if it made one) is over, outcome and all: a resubscription waiting for it may go on.
      releasePass(job);
      reportOutcome(job, outcome, { metrics, stats });
      // Only what is durable is acked; its agent task, if it had one, is forgotten once committed.
      if (outcome !== "abandoned") job.ack.done(job.staged, finishedTask(job, tasks));
      caps.check();
    }
  })();

  // The stop, in order (see Lifecycle).
  life.running(run);
  life.on("intake", () => (caps.close(), consumer.close()));
  for (const part of [fenced, circuits, outputs, concurrency]) life.on("release", () => part.dispose());
  life.on("commit", () => commits.now());
  for (const client of [consumer, producer, admin]) life.on("disconnect", () => client.disconnect());
  // Producers that replaced the first one for replies, made while it ran.
  life.on("disconnect", () => Promise.all(renewed.map((fresh) => fresh.disconnect())));
  life.on("disconnect", () => Promise.all([table.stop(), transactional?.close()]));

  try {
    await consumer.start();
  } catch (error) {
    await life.stop().catch(() => {});
    throw new FatalError(`cannot consume from Kafka at ${options.brokers.join(",")}: ${errorMessage(error)}`);
  }
  const commitTimer = setInterval(() => void commits.now(), settings.commitIntervalMs);
  life.on("release", () => clearInterval(commitTimer));
  life.on("release", startSummary(() => stats, () => ledger.pending, settings.summaryIntervalMs ?? 30_000));
  life.on("release", startAnswerDeadlines({ expired: () => asking.expired(), send: sendRecord(producer) }));
  life.on("release", pollLogEnds({ ...lagSource(admin, consumer, metrics), everyMs: settings.topicRefreshMs }));

  // The pipeline ending by itself means the source failed or a reply could not be written.
  const done = run.then(() => life.stop(), () => life.stop());
  done.catch(() => {});
  return {
    stats,
    metrics,
    readiness: () => readiness(consumer, circuits, outputs, life),
    topics: () => consumer.topics,
    refreshTopics: () => consumer.refresh(),
    stop: () => life.stop().catch(() => {}),
    done,
  };
}

/**
 * The table entry a job's outcome ends, deleted once its offset is committed: the task it ran, or
 * the waiting task an answer was for, unless the task asked again (its entry is then the new
 * question's) or the answer came late (skipped). A failure ends the wait too: its message is in
 * the DLQ, once.
 */
function finishedTask(job: Job, tasks: TaskRegistry): string | undefined {
  const waiting = job.answer?.waiting;
  if (waiting) return job.reply?.answerTo || job.skipped ? undefined : AskingTasks.key(waiting.taskId);
  return tasks.get(job.ctx.messageId) ? job.ctx.messageId : undefined;
}

/** What `/readyz` says now. */
function readiness(
  consumer: Source,
  circuits: AgentCircuits,
  outputs: OutputTopics,
  life: Lifecycle,
): Readiness {
  const kafka = consumer.joined || consumer.topics.length === 0;
  const agents = !circuits.anyOpen;
  const unwritable = outputs.unwritable;
  return {
    ready: kafka && agents && !unwritable.length && !life.stopped,
    kafka,
    agents,
    outputs: !unwritable.length,
    ...(unwritable.length ? { unwritable } : {}),
    topics: consumer.topics.length,
  };
}

/**
 * The topics (or partitions) each pause reason covers, among those consumed now: every topic, a
 * partition, or the topics of the pipelines that a pipeline's cap, an agent circuit or an output
 * topic concerns.
 */
function pauseCoverage(parts: {
  pipelines: readonly Pipeline[];
  archestra: Archestra;
  targets: (topic: string) => readonly Pipeline[];
  outputs: OutputTopics;
  consumed: () => readonly string[];
}): (reason: PauseReason) => readonly string[] {
  const { pipelines, archestra, targets, outputs, consumed } = parts;
  const circuitKeys = new Map(pipelines.map((pipeline) => [
    pipeline.name,
    new Set(
      pipeline.routes.flatMap((route) =>
        route.agents.flatMap((agent) => circuitKeysOf(agentEndpoint(agent, archestra).url))
      ),
    ),
  ]));
  const concerns = (reason: PauseReason, pipeline: Pipeline): boolean => {
    switch (reason.kind) {
      case "pipeline":
        return pipeline.name === reason.pipeline;
      case "output":
        return outputs.writersOf(reason.topic).has(pipeline.name);
      case "circuit":
        return circuitKeys.get(pipeline.name)!.has(reason.key);
      default:
        return true;
    }
  };
  return (reason) => {
    if (reason.kind === "in-flight" || reason.kind === "claiming") return consumed();
    if (reason.kind === "held") {
      return consumed().includes(reason.topic) ? [partitionId(reason.topic, reason.partition)] : [];
    }
    return consumed().filter((topic) => targets(topic).some((pipeline) => concerns(reason, pipeline)));
  };
}

/**
 * Takes a fetched batch in: messages finished before the assignment changed (their outcomes written)
 * are not handled again; the rest are registered in the ledger, counted, and the caps checked.
 */
function intake(parts: {
  ledger: Ledger;
  targets: (topic: string) => readonly Pipeline[];
  stats: BridgeStats;
  metrics: Metrics;
  caps: Caps;
}): (batch: Batch) => Batch {
  const { ledger, targets, stats, metrics, caps } = parts;
  return (delivered) => {
    const { topic, partition } = delivered;
    const pipelines = targets(topic);
    const fresh = ledger.unfinished(topic, partition, delivered.records.map((record) => record.offset));
    const batch = fresh.length === delivered.records.length
      ? delivered
      : { ...delivered, records: delivered.records.filter((record) => fresh.includes(record.offset)) };
    const ack = ledger.receive(topic, partition, fresh, pipelines.map((p) => p.name));
    stats.consumed += batch.records.length;
    for (const pipeline of pipelines) metrics.consumed(pipeline.name, batch.records.length);
    if (batch.highWatermark !== undefined) metrics.highWatermark(topic, partition, batch.highWatermark);
    caps.check();
    return { ...batch, ack };
  };
}

/** How long a resubscription waits for the calls in flight: the longest route timeout, 10 s at least, 5 min at most. */
function drainMs(pipelines: readonly Pipeline[]): number {
  const timeouts = pipelines.flatMap((p) => p.routes.filter((r) => !r.longRunning).map((r) => r.timeoutMs));
  return Math.min(MAX_DRAIN_MS, Math.max(10_000, ...timeouts));
}

/** Says so when a route's windows can hold more events than its pipeline may: they close at the cap then. */
function warnOversizedWindows(pipelines: readonly Pipeline[], caps: Caps): void {
  for (const pipeline of pipelines) {
    for (const route of pipeline.routes) {
      if (route.window && route.window.maxEvents > caps.capOf(pipeline.name)) {
        log.warn(
          "{file}: route {route} windows up to {max} events, more than its pipeline may hold ({cap}): its windows close at their size or when the cap is full",
          { file: pipeline.file, route: route.name, max: route.window.maxEvents, cap: caps.capOf(pipeline.name) },
        );
      }
    }
  }
}

/**
 * What the reply publisher writes with: the producer, a way to replace it (see BatchingSender: a
 * fresh producer is kept in `renewed`, closed at the stop), and a topic-exists check.
 */
function replyWriter(kafka: Kafka, admin: Admin, producer: Producer, renewed: Producer[]) {
  return {
    producer,
    renew: async () => {
      const fresh = kafka.producer({
        allowAutoTopicCreation: true,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await fresh.connect();
      renewed.push(fresh);
      return fresh;
    },
    exists: (topic: string) => admin.fetchTopicMetadata({ topics: [topic] }).then(() => true, () => false),
  };
}

/** `client`, connected; a {@link FatalError} naming the brokers when Kafka cannot be reached. */
async function connected<T extends { connect(): Promise<void>; disconnect(): Promise<void> }>(
  options: Pick<BridgeOptions, "brokers">,
  client: T,
): Promise<T> {
  try {
    await client.connect();
    return client;
  } catch (error) {
    await client.disconnect().catch(() => {});
    throw new FatalError(`cannot reach Kafka at ${options.brokers.join(",")}: ${errorMessage(error)}`);
  }
}

/**
 * The Kafka clients the bridge writes with: a producer, the task registry, and with an exactly-once
 * pipeline, transactional producers per input partition (offsets are per message, so one such
 * pipeline makes the whole process transactional). On failure, every client connected so far
 * (`admin` too) is disconnected.
 */
async function connectWriters(options: BridgeOptions, admin: Admin, outputs: OutputTopics, onFenced: () => void) {
  const { kafka, pipelines, settings } = options;
  const exactlyOnce = pipelines.some((p) => p.delivery.guarantee === "exactly-once");
  const producer: Producer = kafka.producer({
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  // Transactions are sized to what the broker and the output topics take.
  const limits = new RecordLimits(admin);
  const transactional: TransactionalSink | undefined = exactlyOnce
    ? new TransactionalOutput(
      new PartitionProducers(kafka, settings.transactionalId ?? settings.groupId),
      settings.groupId,
      limits,
      onFenced,
      outputs,
    )
    : undefined;
  const table = new KafkaTable({ kafka, topic: settings.tasksTopic, groupId: settings.groupId });
  try {
    await producer.connect();
    await table.start();
    if (exactlyOnce) await limits.start();
  } catch (error) {
    await Promise.allSettled([admin.disconnect(), producer.disconnect(), table.stop()]);
    throw new FatalError(`cannot reach Kafka at ${options.brokers.join(",")}: ${errorMessage(error)}`);
  }
  return { producer, table, transactional };
}

/** The consumer adapter for the pipelines' topics (and the answers topics beside them). */
function consumerFor(options: BridgeOptions, admin: Admin, answerTopics: AnswerTopics): Source {
  const { kafka, pipelines, settings } = options;
  return new ConsumerAdapter({
    kafka,
    admin,
    groupId: settings.groupId,
    subscriptions: settings.topics ?? [...new Set(pipelines.flatMap((p) => p.topics))],
    isOutput: outputTopicTest(pipelines),
    companions: (sources) => answerTopics.of(sources),
    fromBeginning: settings.autoOffsetReset === "earliest",
    refreshMs: settings.topicRefreshMs,
    sessionTimeoutMs: settings.sessionTimeoutMs,
    onSubscribe: (topics) =>
      ensureOutputTopics(admin, pipelines, topics, {
        partitions: settings.outputTopicPartitions,
        replicationFactor: settings.outputTopicReplicationFactor,
      }),
  });
}

/** The caps on what the process takes in, counted and measured when they hold. */
function capsFor(parts: {
  ledger: Ledger;
  flow: FlowControl;
  pipelines: readonly Pipeline[];
  targets: (topic: string) => readonly Pipeline[];
  settings: Pick<Settings, "maxInFlight" | "maxUncommittedBytes">;
  stats: BridgeStats;
  metrics: Metrics;
}): Caps {
  const { settings, stats, metrics } = parts;
  return new Caps({
    ...parts,
    maxInFlight: settings.maxInFlight,
    maxUncommittedBytes: settings.maxUncommittedBytes,
    onPaused: () => stats.backpressurePauses++,
    onHeld: (topic, partition, held) => {
      if (held) stats.uncommittedPauses++;
      metrics.partitionHeld(topic, partition, held);
    },
  });
}

/** Counts assignment changes (not the first join, nor a seek) and forgets the partitions' gauges. */
function rebalanceCounter(consumer: Source, stats: BridgeStats, metrics: Metrics) {
  let joinedBefore = false;
  return ({ kind }: PartitionChange) => {
    if (consumer.topics.length && kind !== "seek" && (kind !== "join" || joinedBefore)) stats.rebalances++;
    joinedBefore ||= kind === "join";
    metrics.forgetPartitions();
  };
}

/**
 * The stages from the consumer's batches to each job's outcome: dispatch → decode → answers → match
 * → window → transform → fan-out → invoke → publish.
 */
function stagesOf(
  parts: {
    pipelines: readonly Pipeline[];
    answerTopics: AnswerTopics;
    asking: AskingTasks;
    caps: Caps;
    rebalance: Rebalance;
    publisher: Sink;
    replies?: RegisteredReplies;
    decode: Stage;
  },
  invoking: (jobs: AsyncIterable<Job>) => AsyncIterable<Job>,
  batches: AsyncIterable<Batch>,
): AsyncIterable<{ job: Job; outcome: Outcome }> {
  const { pipelines, answerTopics, asking, caps, rebalance, publisher, replies, decode } = parts;
  const windowed = pipelines.some((pipeline) => pipeline.routes.some((route) => route.window));
  warnOversizedWindows(pipelines, caps);
  return pipe(
    batches,
    (batches) => dispatch(batches, pipelines, answerTopics),
    decode,
    (jobs) => answers(jobs, asking, (topic) => answerTopics.pipelinesFor(topic)[0]?.name),
    match,
    // Without a windowed route, no stage: every job would only pass through it.
    (jobs) => {
      if (!windowed) return jobs;
      const windows = window(jobs, caps.windowing());
      // While a cap holds, windows waiting to fill it would stall it; those of revoked partitions go.
      caps.onHold(() => windows.relieve());
      rebalance.onChange(() => windows.dropStale());
      return windows;
    },
    transform,
    fanOut,
    invoking,
    (jobs) => publish(jobs, publisher, replies),
  );
}

/** Writes one record, acknowledged by every replica. */
function sendRecord(producer: Producer) {
  return async (topic: string, record: OutRecord) => {
    await producer.send({ topic, acks: -1, messages: [toKafkaMessage(record)] });
  };
}

/** Where the consumer-lag metric's log ends come from while fetching is paused. */
function lagSource(admin: Admin, consumer: Source, metrics: Metrics) {
  return {
    topics: () => consumer.topics,
    fetchTopicOffsets: (topic: string) => admin.fetchTopicOffsets(topic),
    highWatermark: (topic: string, partition: number, high: string) => metrics.highWatermark(topic, partition, high),
  };
}

/**
 * The reply schema under every subject known at start (a pipeline with exact source topics and a
 * responses topic named from `{$topic}` alone, or `subject: record`): one that will never take it
 * (registration off and the schema not there, incompatible versions, registration refused) stops
 * the start, before any agent is called for replies that could not be written. A registry that does
 * not answer yet is waited for by the replies.
 */
async function prepareReplySubjects(pipelines: readonly Pipeline[], registry: ReplyEncoder): Promise<void> {
  const problems: string[] = [];
  subjects: for (const pipeline of pipelines) {
    const { format, subject, autoRegister, responses } = pipeline.publish;
    if (!isReplyFormat(format)) continue;
    if (pipeline.topics.some((topic) => topic.includes("*"))) continue;
    for (const topic of pipeline.topics) {
      const named = renderTemplate(responses, (path) => path === "$topic" ? topic : undefined);
      if (named.missing.length) break;
      try {
        await registry.prepare(named.text, { format, subject, autoRegister });
      } catch (error) {
        if (error instanceof UnencodableReply || (error instanceof RegistryUnavailable && error.why)) {
          problems.push(`${pipeline.file}:publish: ${errorMessage(error)}`);
        } else {
          log.warn("the reply schema for {topic}: {error}; its replies wait for the registry", {
            topic: named.text,
            error: errorMessage(error),
          });
          // It does not answer: every other subject would wait as long.
          break subjects;
        }
      }
      // One subject for every topic.
      if (subject === "record") break;
    }
  }
  if (problems.length) throw new FatalError(problems, { config: true });
}

/**
 * The schema registry, when SCHEMA_REGISTRY_URL is set (its serde library is loaded only then). Its
 * credentials refused is a configuration error; a registry that does not answer yet is waited for
 * by the records that need it.
 */
async function openRegistry(
  settings: BridgeOptions["settings"],
): Promise<(RecordDecoder & ReplyEncoder) | undefined> {
  if (!settings.schemaRegistryUrl) return undefined;
  const { SchemaRegistry } = await import("./registry/schema_registry.ts");
  const { registryOptions } = await import("./registry/client.ts");
  const registry = new SchemaRegistry(registryOptions(settings));
  try {
    await registry.check();
  } catch (error) {
    if (error instanceof RegistryUnavailable && error.why) {
      throw new FatalError([
        `environment:SCHEMA_REGISTRY_URL: ${error.message} at ${registry.url}`,
        {
          refused:
            "set SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD, or SCHEMA_REGISTRY_TOKEN, to credentials it accepts",
          misconfigured: "set SCHEMA_REGISTRY_URL to the registry's Confluent-compatible API",
          untrusted:
            "set SCHEMA_REGISTRY_SSL_CA_FILE (or KAFKA_SSL_CA_FILE) to the PEM file of the CA that signed its certificate",
        }[error.why],
      ], { config: true });
    }
    log.warn("the schema registry at {url} does not answer yet ({error}): records in its wire format wait for it", {
      url: registry.url,
      error: errorMessage(error),
    });
  }
  return registry;
}
