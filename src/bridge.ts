/**
 * @module
 * The bridge: wiring and lifecycle. The consumer adapter feeds the stages (dispatch → decode →
 * match → window → transform → fan-out → invoke → publish); each outcome settles its job's ack in the ledger;
 * commits store what the ledger says is done; flow control pauses the topics that a full in-flight
 * cap or an open agent circuit covers. When the assignment changes, what is finished is committed
 * and the rest dropped, which Kafka then delivers again.
 *
 * @example
 * ```ts
 * import { agentLimits, type BridgeOptions, startBridge } from "./bridge.ts";
 * import { FatalError } from "./errors.ts";
 * import { parsePipelineText } from "./config/load_pipelines.ts";
 * // What src/main.ts does with a Kafka client, the pipelines and the settings (not called here: it needs a broker).
 * async function serve(options: BridgeOptions): Promise<void> {
 *   const bridge = await startBridge(options);
 *   Deno.addSignalListener("SIGTERM", () => void bridge.stop());
 *   await bridge.done; // rejects with the reason when the bridge had to stop by itself
 * }
 * // The agents' limits, shared by the pipelines that call them, as the bridge sets them up at its start:
 * const pipeline = (name: string, concurrency: number) => {
 *   const yaml = `name: ${name}\nsource: {topics: [t]}\nroutes: [{name: r, invoke: {prompt_id: x}}]\n` +
 *     `agent_limits: [{prompt_id: x, concurrency: ${concurrency}}]\n`;
 *   return parsePipelineText(`${name}.yaml`, yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines[0];
 * };
 * const archestra = { archestraUrl: "http://localhost:9000" };
 * const limits = agentLimits([pipeline("a", 2), pipeline("b", 2)], archestra);
 * if (limits.concurrencyOf("http://localhost:9000/v1/a2a/x") !== 2) throw new Error("x's limit");
 * try {
 *   agentLimits([pipeline("a", 2), pipeline("b", 3)], archestra);
 *   throw new Error("two limits for one agent");
 * } catch (error) {
 *   if (!(error instanceof FatalError) || error.exitCode !== 2) throw error;
 * }
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { type Kafka, Partitioners, type Producer } from "kafkajs";
import { AgentCards } from "./a2a/agent_cards.ts";
import { AgentCircuits } from "./a2a/agent_circuits.ts";
import { AgentLimits } from "./a2a/agent_limits.ts";
import { AgentConcurrency } from "./a2a/agent_concurrency.ts";
import { Commits } from "./delivery/commits.ts";
import type { Settings } from "./config/settings.ts";
import { dispatch, targetPipelines } from "./dispatch.ts";
import { AnswerTopics } from "./answer_topics.ts";
import { AskingTasks } from "./a2a/asking_tasks.ts";
import { answers, timeoutRecord } from "./stages/answers.ts";
import { errorMessage, FatalError } from "./errors.ts";
import { FlowControl } from "./flow_control.ts";
import { ConsumerAdapter } from "./kafka/consumer_adapter.ts";
import { ensureOutputTopics, kafkaPublisher } from "./kafka/sink.ts";
import { OutputTopics, UNWRITABLE_HELP } from "./kafka/output_topics.ts";
import { toKafkaMessage } from "./kafka/message.ts";
import { KafkaTable } from "./kafka/compacted_table.ts";
import { TaskRegistry } from "./a2a/task_registry.ts";
import { Conversations } from "./a2a/conversations.ts";
import { TransactionalOutput } from "./kafka/transactions.ts";
import { RecordLimits } from "./kafka/record_limits.ts";
import { PartitionProducers } from "./kafka/partition_producers.ts";
import { outputTopicTest } from "./kafka/topics.ts";
import { Ledger } from "./delivery/ledger.ts";
import { eventCount, type Job, partitionId, partitionOf, type Pipeline, pipelineCap } from "./model.ts";
import { UncommittedBudget } from "./delivery/uncommitted_budget.ts";
import { CallGate, releasePass } from "./delivery/call_gate.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";
import { endMessageSpan } from "./ops/tracing.ts";
import { startSummary } from "./ops/summary.ts";
import { decode } from "./stages/decode.ts";
import { fanOut } from "./stages/fan_out.ts";
import { invoke } from "./stages/invoke.ts";
import { agentEndpoint, type Archestra } from "./a2a/endpoint.ts";
import { match } from "./stages/match.ts";
import { publish } from "./stages/publish.ts";
import type { Outcome } from "./delivery/ports.ts";
import { transform } from "./stages/transform.ts";
import { window, type WindowStage } from "./stages/window.ts";
import { pipe } from "./util/pipe.ts";
import { abortableDelay } from "./util/abortable_delay.ts";

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
    & Partial<Pick<Settings, "summaryIntervalMs">>;
  archestraUrl: string;
  /** First pause before probing an agent whose circuit is open (default 1 s, doubling up to the max). */
  probeDelayMs?: number;
  /** Longest pause between probes (default `MAX_PROBE_DELAY_MS`, 10 s): bounds how long a recovered agent waits to be noticed. */
  maxProbeDelayMs?: number;
  /** Where the bridge reports what it does (default: a registry of its own, see {@link Bridge.metrics}). */
  metrics?: Metrics;
}

/** Counters of what the bridge did, by outcome. */
export interface BridgeStats {
  consumed: number;
  replied: number;
  deadLettered: number;
  skipped: number;
  abandoned: number;
  /** Messages whose DLQ record the broker refused even with its value cut: logged, counted, committed. */
  dropped: number;
  /** Commits that stored offsets. */
  commits: number;
  /** Commit cycles run, including those that found nothing new to store. */
  commitChecks: number;
  /** Times the consumer's assignment changed (rebalance, rejoin, restart, re-subscription). */
  rebalances: number;
  /** Times fetching paused because `maxInFlight` messages (or a pipeline's own cap) were unfinished. */
  backpressurePauses: number;
  /** Times an agent's circuit opened because every call failed. */
  circuitOpenings: number;
  /** Times an agent began to refuse the bridge (its token, or the agent itself, unknown to it). */
  refusals: number;
  /** Times a partition paused because what waits behind its commit point reached its share of `maxUncommittedBytes`. */
  uncommittedPauses: number;
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

/** The pipelines' agent limits by endpoint; two different limits for one agent are a {@link FatalError}. */
export function agentLimits(
  pipelines: readonly Pipeline[],
  archestra: Archestra,
): AgentLimits {
  const limits = new AgentLimits();
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const pipeline of pipelines) {
    pipeline.agentLimits.forEach(({ agent, ...limit }, index) => {
      const { url } = agentEndpoint(agent, archestra);
      const where = `${pipeline.file}:agent_limits[${index}]`;
      if (!limits.set(url, limit)) problems.push(`${where}: ${url} has a different limit in ${seen.get(url)}`);
      seen.set(url, seen.get(url) ?? where);
    });
  }
  if (problems.length) throw new FatalError(problems, { config: true });
  return limits;
}

/** Connects to Kafka and starts consuming. Throws a {@link FatalError} when Kafka cannot be reached. */
export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const { kafka, pipelines, settings } = options;
  const archestra = {
    archestraUrl: options.archestraUrl,
    archestraToken: settings.archestraToken,
    archestraA2a: settings.archestraA2a,
  };
  const limits = agentLimits(pipelines, archestra);
  // Output topics that cannot be written (missing, or denied): the pipelines writing them wait.
  const outputs = new OutputTopics({
    probeDelayMs: options.probeDelayMs,
    maxProbeDelayMs: options.maxProbeDelayMs,
    onChange: (topic, reason, how) => {
      metrics.outputUnwritable(topic, reason !== undefined);
      const pipelines = [...outputs.writersOf(topic)];
      if (reason) {
        log.error(
          "cannot write to {topic}: {help}. Pipelines {pipelines} pause until it can (nothing past their waiting messages is committed), probing",
          { topic, reason, help: UNWRITABLE_HELP[reason], pipelines },
        );
      } else if (how === "forgotten") {
        log.info("no record waits for {topic} any more (their messages come again): the next one tries it", { topic });
      } else log.info("{topic} can be written again: resuming {pipelines}", { topic, pipelines });
    },
    onHolding: (topic, holding) => flow.set(`output ${topic}`, holding),
  });

  // A fenced transaction is handled below (onFenced), once the rest is wired.
  const { admin, producer, table, transactional } = await connectKafka(options, () => onFenced(), outputs);
  // Running tasks and keys' conversations, kept in one compacted topic shared by the replicas.
  const tasks = new TaskRegistry(table);
  const conversations = new Conversations(table);
  // Tasks that asked, waiting for answers from the answers topics consumed beside their sources.
  const asking = new AskingTasks(table);
  const answerTopics = new AnswerTopics(pipelines);

  const stats: BridgeStats = {
    consumed: 0,
    replied: 0,
    deadLettered: 0,
    skipped: 0,
    abandoned: 0,
    dropped: 0,
    get commits() {
      return commits.stored;
    },
    get commitChecks() {
      return commits.checks;
    },
    rebalances: 0,
    backpressurePauses: 0,
    circuitOpenings: 0,
    refusals: 0,
    uncommittedPauses: 0,
  };
  const metrics = options.metrics ?? createMetrics();
  // A task's entry (running, or waiting for an answer) goes once what ended it is committed.
  const ledger = new Ledger({ forgetTask: (key) => table.delete(key), rememberFinished: !transactional });
  metrics.inFlightFrom(() => ledger.pending);
  metrics.uncommittedFrom(() => ledger.uncommittedBytes);
  // Aborted when the bridge starts to stop: waits for room or for drained work end then.
  const stopping = new AbortController();
  // Aborted after the grace period: calls still running are abandoned.
  const abort = new AbortController();
  let shutdown: (reason?: unknown) => Promise<void> = () => Promise.resolve();
  // Set once consuming has started; a start that fails stops without it.
  let stopSummary = () => {};
  let joinedBefore = false;

  const commits = new Commits({
    ledger,
    write: (commit) => transactional ? transactional.commit(commit) : consumer.commit(commit.offsets),
    losesRecords: transactional !== undefined,
    fatal: (error) => void shutdown(new FatalError(errorMessage(error))),
    onCommitted: ({ offsets }) => {
      metrics.committed(offsets);
      // Commit points moved: partitions paused for what they held may resume.
      checkCaps(true);
    },
  });

  // Which topics each pause reason covers: every topic, a pipeline's, or those of the pipelines
  // that call through one agent circuit.
  const circuits = new AgentCircuits({
    threshold: settings.circuitFailures,
    probeDelayMs: options.probeDelayMs,
    maxProbeDelayMs: options.maxProbeDelayMs,
    onChange: ({ key, label, state, reason }) => {
      if (state === "down") stats.circuitOpenings++;
      if (state === "refused") stats.refusals++;
      metrics.circuit(label, state);
      const host = key.startsWith("host ");
      if (state === "refused") {
        log.error("agent {agent} refuses the bridge ({reason}): its routes wait, probing until it accepts", {
          agent: label,
          reason,
        });
      } else if (state === "down" && host) {
        log.warn("several agents on {agent} cannot be reached: pausing every route that calls it, probing", {
          agent: label,
        });
      } else if (state === "down") {
        log.warn("agent {agent} is failing every call: pausing its routes, probing", { agent: label });
      } else log.warn("{what} {agent} answers again: resuming", { what: host ? "host" : "agent", agent: label });
    },
    // Paused while messages wait on the circuit; with none waiting, the next message comes in to probe.
    onHolding: (key, holding) => flow.set(`circuit ${key}`, holding),
  });
  const circuitKeys = new Map<string, Set<string>>(pipelines.map((pipeline): [string, Set<string>] => [
    pipeline.name,
    new Set(
      pipeline.routes.flatMap((route) =>
        route.agents.flatMap((agent) => circuits.keysOf(agentEndpoint(agent, archestra).url))
      ),
    ),
  ]));
  // Adaptive limits: a gauge each, and a log line when one has doubled or halved since the last
  // line, at most every 10 s (the gauge has every move).
  const logged = new Map<string, { limit: number; at: number }>();
  const concurrency = new AgentConcurrency({
    capOf: (url) => limits.concurrencyOf(url),
    onChange: ({ label, limit, previous, floorMs }) => {
      metrics.concurrencyLimit(label, limit);
      const last = logged.get(label);
      const moved = !last || limit >= 2 * last.limit || 2 * limit <= last.limit;
      if (!moved || (last && Date.now() - last.at < 10_000)) return;
      logged.set(label, { limit, at: Date.now() });
      log.info("agent {agent}: {limit} calls at once (was {previous}; its latency floor {floorMs} ms)", {
        agent: label,
        limit,
        previous,
        floorMs: floorMs === undefined ? "not measured yet" : Math.round(floorMs),
      });
    },
  });
  const caps = new Map(pipelines.map((p) => [p.name, pipelineCap(p, pipelines.length, settings.maxInFlight)]));
  const flow = new FlowControl({
    topicsOf: (reason) => {
      const [kind, name] = [reason.slice(0, reason.indexOf(" ")), reason.slice(reason.indexOf(" ") + 1)];
      const reads = (pipeline: Pipeline) =>
        kind === "pipeline"
          ? pipeline.name === name
          : kind === "output"
          ? outputs.writersOf(name).has(pipeline.name)
          : circuitKeys.get(pipeline.name)!.has(name);
      if (reason === "in-flight" || reason === "claiming") return consumer.topics;
      if (kind === "held") return consumer.topics.includes(partitionOf(name)!.topic) ? [name] : [];
      return consumer.topics.filter((topic) => targetPipelines(pipelines, topic, answerTopics).some(reads));
    },
    apply: (paused) => consumer.setPaused(paused),
  });
  // The window stage, once the pipelines have a windowed route (see `windowing` below).
  let windows: WindowStage | undefined;
  // What waits behind commit points is bounded: a partition holding too much pauses, alone.
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  const uncommitted = new UncommittedBudget({
    budget: settings.maxUncommittedBytes,
    onPause: ({ topic, partition, head, bytes }, share) => {
      stats.uncommittedPauses++;
      metrics.partitionHeld(topic, partition, true);
      log.warn(
        "{topic}/{partition}: {held} MiB of finished messages wait behind offset {head}, not yet finished (its share of KAFKA_MAX_UNCOMMITTED_BYTES: {share} MiB): pausing this partition until its commit point moves",
        { topic, partition, head, held: mib(bytes), share: mib(share) },
      );
      flow.set(`held ${partitionId(topic, partition)}`, true);
    },
    onResume: ({ topic, partition }) => {
      metrics.partitionHeld(topic, partition, false);
      log.info("{topic}/{partition}: its commit point moved on: resuming", { topic, partition });
      flow.set(`held ${partitionId(topic, partition)}`, false);
    },
  });
  // The caps, checked whenever work is taken in or settled. The process's cap resumes as soon as it
  // has room: messages parked behind an open circuit count against it, and may never drain to half.
  const checkCaps = (committed = false) => {
    uncommitted.check(ledger.uncommittedBytes, () => ledger.holdings(), committed);
    let paused = flow.cap("in-flight", ledger.pending, settings.maxInFlight, settings.maxInFlight - 1);
    for (const [name, cap] of caps) paused = flow.cap(`pipeline ${name}`, ledger.inFlight(name), cap) || paused;
    if (paused) {
      stats.backpressurePauses++;
      log.debug("in-flight cap reached: pausing {reasons}", { reasons: [...flow.reasons] });
    }
    // While a cap holds, windows waiting to fill it would stall it: whatever changed, look again.
    if (flow.reasons.size) windows?.relieve();
  };
  /** How many more messages of a partition may be taken in now: 0 while it is paused. */
  const roomFor = (topic: string, partition: number) => {
    if (flow.paused(topic, partition) || stopping.signal.aborted) return 0;
    let room = settings.maxInFlight - ledger.pending;
    for (const pipeline of targetPipelines(pipelines, topic, answerTopics)) {
      room = Math.min(room, caps.get(pipeline.name)! - ledger.inFlight(pipeline.name));
    }
    return Math.max(1, room);
  };

  // Closed while the consumer subscribes again; waits at most as long as the longest call may take.
  const gate = new CallGate();
  const drainMs = Math.min(
    MAX_DRAIN_MS,
    Math.max(10_000, ...pipelines.flatMap((p) => p.routes.filter((r) => !r.longRunning).map((r) => r.timeoutMs))),
  );
  const consumer = new ConsumerAdapter({
    kafka,
    admin,
    groupId: settings.groupId,
    subscriptions: settings.topics ?? [...new Set(pipelines.flatMap((p) => p.topics))],
    isOutput: outputTopicTest(pipelines),
    companions: (sources) => answerTopics.of(sources),
    fromBeginning: settings.autoOffsetReset === "earliest",
    refreshMs: settings.topicRefreshMs,
    sessionTimeoutMs: settings.sessionTimeoutMs,
    onBatch: (delivered) => {
      const targets = targetPipelines(pipelines, delivered.topic, answerTopics);
      const { topic, partition } = delivered;
      // Messages finished before the assignment changed (their outcomes written) are not handled again.
      const fresh = ledger.unfinished(topic, partition, delivered.records.map((record) => record.offset));
      const batch = fresh.length === delivered.records.length
        ? delivered
        : { ...delivered, records: delivered.records.filter((record) => fresh.includes(record.offset)) };
      const ack = ledger.receive(topic, partition, fresh, targets.map((p) => p.name));
      stats.consumed += batch.records.length;
      for (const pipeline of targets) metrics.consumed(pipeline.name, batch.records.length);
      if (batch.highWatermark !== undefined) metrics.highWatermark(topic, partition, batch.highWatermark);
      checkCaps();
      return { ...batch, ack };
    },
    room: roomFor,
    onAssignmentChanged: (cause, assigned) => {
      const counted = cause !== "moved to the committed offsets" && (cause !== "joined the group" || joinedBefore);
      if (consumer.topics.length && counted) stats.rebalances++;
      joinedBefore ||= cause === "joined the group";
      log.debug("assignment changed ({cause}): committing what is finished, dropping the rest", { cause });
      // Synchronously, before kafkajs fetches again: what is finished is committed, the rest dropped.
      // With exactly-once, on the producers it was done with (fenced where its partition moved),
      // before the claim below replaces them: never on the new owner's behalf.
      // Offsets an earlier failed commit carries are kept for owned partitions only: first, so that
      // the commit below does not carry one another member may have moved past meanwhile.
      if (assigned) void commits.owned(assigned);
      void commits.these(ledger.assignmentChanged());
      // What the ledger remembers finished is kept for the partitions still owned only.
      if (assigned) ledger.owned(assigned);
      // Open windows of revoked partitions go now: their events come again to whoever owns them.
      windows?.dropStale();
      if (transactional && assigned) void claim(assigned);
      // Subscribed again: calls go on (those that waited at the gate went stale with their generation).
      if (cause === "subscribing again") gate.open();
      metrics.forgetPartitions();
      checkCaps(true);
      flow.refresh();
    },
    // Before subscribing again (kafkajs leaves the group, and every message not committed comes
    // again): no new call starts, the calls made finish and their outcomes are committed, so no
    // call is made twice. Messages whose calls had not started (waiting for a slot, or parked
    // behind an open circuit) are delivered again and called then.
    drain: async () => {
      gate.close();
      await gate.idle(AbortSignal.any([stopping.signal, AbortSignal.timeout(drainMs)]));
      await commits.now();
    },
    onSubscribe: (topics) =>
      ensureOutputTopics(admin, pipelines, topics, {
        partitions: settings.outputTopicPartitions,
        replicationFactor: settings.outputTopicReplicationFactor,
      }),
  });

  /**
   * Exactly-once, on joining the group: before fetching, take the assigned partitions' transactional
   * ids over, which fences every earlier holder (a frozen member, a pod being replaced) and waits for
   * its open transaction to end; then read the committed offsets again, which may have moved since
   * kafkajs read them. Without KIP-447 (kafkajs has none) this is what keeps a member that lost a
   * partition from committing replies that its new owner also writes.
   */
  let claims = 0;
  const claim = async (assigned: { topic: string; partition: number }[]) => {
    const mine = ++claims;
    const current = () => mine === claims;
    flow.set("claiming", true);
    try {
      // In the commits' turn, so no transaction is under way on a producer being replaced; and
      // not at all once a newer join overtook this one (its claim is the one that counts).
      await commits.exclusive(async () => {
        for (let attempt = 1; current(); attempt++) {
          try {
            await transactional!.claim(assigned);
            // Fenced commits before now (the old generation's, queued ahead of this) are answered by this join.
            clearTimeout(fencedTimer);
            fencedTimer = undefined;
            await consumer.seekToCommitted(assigned);
            return;
          } catch (error) {
            // Right after a broker restart the coordinator may not be there yet: try a few times.
            if (attempt >= 4) throw error;
            log.warn("could not take over the transactional ids of {assigned} yet: {error}", {
              assigned,
              error: errorMessage(error),
            });
            await abortableDelay(1_000 * attempt, stopping.signal);
          }
        }
      });
    } catch (error) {
      // Without its partitions' transactional ids this member could commit nothing it does: stop.
      if (current()) void shutdown(new FatalError(`cannot take over the transactional ids: ${errorMessage(error)}`));
    } finally {
      if (current()) flow.set("claiming", false);
    }
  };
  // A commit left to another member ("fenced") while no rebalance followed: this member is not told
  // it lost the partition, or its transaction timed out. Either way it cannot go on: stop after
  // twice the session timeout without a join.
  let fencedTimer: ReturnType<typeof setTimeout> | undefined;
  const onFenced = () => {
    fencedTimer ??= setTimeout(() => {
      void shutdown(new FatalError("a transaction was fenced and no rebalance followed: restarting to rejoin"));
    }, 2 * (settings.sessionTimeoutMs ?? 30_000));
  };

  const windowed = pipelines.some((pipeline) => pipeline.routes.some((route) => route.window));
  /**
   * When open windows close early: a cap (the pipeline's or the process's) has paused its topics and
   * they hold at least half of it, so that it could never resume (at half) while they wait to fill;
   * or one holds back too many finished messages of its partition from being committed.
   */
  const windowing = {
    crowded: (pipeline: string, held: number) =>
      flow.reasons.has(`pipeline ${pipeline}`) && 2 * held >= caps.get(pipeline)!,
    full: (held: number) => flow.reasons.has("in-flight") && 2 * held >= settings.maxInFlight,
    // As many finished messages waiting on one window as the process may have unfinished.
    pinned: (topic: string, partition: number) => {
      const { head, finished } = ledger.behind(topic, partition);
      return finished >= settings.maxInFlight ? head : undefined;
    },
  };
  for (const pipeline of pipelines) {
    for (const route of pipeline.routes) {
      if (route.window && route.window.maxEvents > caps.get(pipeline.name)!) {
        log.warn(
          "{file}: route {route} windows up to {max} events, more than its pipeline may hold ({cap}): its windows close at their size or when the cap is full",
          {
            file: pipeline.file,
            route: route.name,
            max: route.window.maxEvents,
            cap: caps.get(pipeline.name),
          },
        );
      }
    }
  }

  /** Settles one outcome: counts it, logs it, and acks it (only what is durable is acked). */
  const settle = (job: Job, outcome: Outcome) => {
    // Its call (if it made one) is over, outcome and all: a resubscription waiting for it may go on.
    releasePass(job);
    // A failed window's events went to the DLQ one by one: each is counted and logged as its own.
    const events = job.eventOutcomes;
    metrics.outcome(job, outcome, events?.filter((event) => event.outcome === "dropped").length);
    endMessageSpan(job, outcome);
    for (const event of events ?? [{ job, outcome }]) {
      logOutcome(event.job, event.outcome);
      // A window's events count one each, except in replies: one per window.
      stats[OUTCOME_STAT[event.outcome]] += event.outcome === "replied" ? 1 : eventCount(event.job);
    }
    if (outcome !== "abandoned") {
      // Its agent task, if it had one, is over: forgotten once the offset is committed.
      job.ack.done(job.staged, finishedTask(job, tasks));
    }
    checkCaps();
  };

  // Producers that replaced the first one for replies (see BatchingSender): closed at the end.
  const renewed: Producer[] = [];
  const renew = async () => {
    const fresh = kafka.producer({ allowAutoTopicCreation: true, createPartitioner: Partitioners.DefaultPartitioner });
    await fresh.connect();
    renewed.push(fresh);
    return fresh;
  };
  const exists = (topic: string) => admin.fetchTopicMetadata({ topics: [topic] }).then(() => true, () => false);
  const outcomes = pipe(
    consumer.batches(),
    (batches) => dispatch(batches, pipelines, answerTopics),
    decode,
    (jobs) => answers(jobs, asking, (topic) => answerTopics.pipelinesFor(topic)[0]?.name),
    match,
    // Without a windowed route, no stage: every job would only pass through it.
    (jobs) => windowed ? windows = window(jobs, windowing) : jobs,
    transform,
    fanOut,
    (jobs) =>
      invoke(jobs, {
        ...archestra,
        signal: abort.signal,
        circuitFor: circuits.agent,
        hostCircuitFor: circuits.host,
        stopping: stopping.signal,
        tasks,
        conversations,
        asking,
        limits,
        concurrency,
        cards: new AgentCards(),
        gate,
      }),
    (jobs) =>
      publish(
        jobs,
        transactional?.publishContext() ?? kafkaPublisher({ producer, renew, exists }, outputs, stopping.signal),
      ),
  );
  const run = (async () => {
    for await (const { job, outcome } of outcomes) settle(job, outcome);
  })();

  const timers: ReturnType<typeof setInterval>[] = [];
  let stopped: Promise<void> | undefined;
  shutdown = (reason?: unknown) => {
    stopped ??= (async () => {
      stopping.abort();
      await consumer.close();
      // Calls still waiting on an open circuit, or running past the grace period, are abandoned.
      const grace = setTimeout(() => abort.abort(), settings.shutdownGraceMs);
      const result = await run.then(() => undefined, (error) => error);
      clearTimeout(grace);
      timers.forEach(clearInterval);
      stopSummary();
      clearTimeout(fencedTimer);
      circuits.dispose();
      outputs.dispose();
      concurrency.dispose();
      // Only what finished is committed; a failure above leaves the rest for the next run.
      await commits.now();
      await Promise.allSettled([
        consumer.disconnect(),
        producer.disconnect(),
        ...renewed.map((fresh) => fresh.disconnect()),
        admin.disconnect(),
        table.stop(),
        transactional?.close(),
      ]);
      const cause = reason ?? result;
      if (cause) throw cause instanceof FatalError ? cause : new FatalError(`stopped: ${errorMessage(cause)}`);
    })();
    return stopped;
  };

  try {
    await consumer.start();
  } catch (error) {
    await shutdown().catch(() => {});
    throw new FatalError(`cannot consume from Kafka at ${options.brokers.join(",")}: ${errorMessage(error)}`);
  }
  timers.push(setInterval(() => void commits.now(), settings.commitIntervalMs));
  stopSummary = startSummary(() => stats, () => ledger.pending, settings.summaryIntervalMs ?? 30_000);
  // A task that waits past its deadline gets the bridge's own timeout on its answers topic: read like
  // an answer, in turn with any answer that came first, it cancels the task if it still waits.
  const timedOut = new Set<string>();
  timers.push(setInterval(async () => {
    const expired = asking.expired();
    // Marks of tasks that no longer wait past a deadline go: the set holds only what waits now.
    const now = new Set(expired.map((task) => `${task.taskId}\n${task.deadline}`));
    for (const mark of timedOut) if (!now.has(mark)) timedOut.delete(mark);
    for (const task of expired) {
      const mark = `${task.taskId}\n${task.deadline}`;
      if (timedOut.has(mark)) continue;
      timedOut.add(mark);
      const { topic, record } = timeoutRecord(task);
      try {
        await producer.send({ topic, acks: -1, messages: [toKafkaMessage(record)] });
      } catch (error) {
        timedOut.delete(mark);
        log.warn("could not time out task {taskId} on {topic}: {error}", {
          taskId: task.taskId,
          topic,
          error: errorMessage(error),
        });
      }
    }
  }, 1_000));
  // Log end offsets come with each fetch; while fetching is paused (an agent outage, backpressure)
  // they are asked for, so consumer lag keeps growing where it grows.
  timers.push(setInterval(async () => {
    try {
      for (const topic of consumer.topics) {
        for (const { partition, high } of await admin.fetchTopicOffsets(topic)) {
          metrics.highWatermark(topic, partition, high);
        }
      }
    } catch (error) {
      log.debug("could not read log end offsets: {error}", { error: errorMessage(error) });
    }
  }, settings.topicRefreshMs));

  // The pipeline ending by itself means the source failed or a reply could not be written.
  const done = run.then(() => shutdown(), (error) => shutdown(error));
  done.catch(() => {});

  return {
    stats,
    metrics,
    readiness: () => {
      const kafka = consumer.joined || consumer.topics.length === 0;
      const agents = !circuits.anyOpen;
      const unwritable = outputs.unwritable;
      return {
        ready: kafka && agents && !unwritable.length && !stopped,
        kafka,
        agents,
        outputs: !unwritable.length,
        ...(unwritable.length ? { unwritable } : {}),
        topics: consumer.topics.length,
      };
    },
    topics: () => consumer.topics,
    refreshTopics: () => consumer.refresh(),
    stop: async () => {
      await shutdown().catch(() => {});
    },
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

/** The counter each outcome adds to. */
const OUTCOME_STAT = {
  replied: "replied",
  "dead-lettered": "deadLettered",
  skipped: "skipped",
  abandoned: "abandoned",
  dropped: "dropped",
} as const satisfies Record<Outcome, keyof BridgeStats>;

/**
 * One log line per outcome: DEBUG for a reply (the progress line counts them at INFO), WARN for a DLQ
 * record, ERROR for a record the DLQ refused.
 */
function logOutcome(job: Job, outcome: Outcome): void {
  if (outcome === "replied" && !log.isEnabledFor("debug")) return;
  const members = job.window?.members;
  // A window's offsets as first..last of its partition.
  const offset = members ? `${members[0].ctx.offset}..${members[members.length - 1].ctx.offset}` : job.ctx.offset;
  const where = { pipeline: job.ctx.pipeline, route: job.route?.name, topic: job.ctx.topic, offset };
  switch (outcome) {
    case "replied":
      log.debug("reply from {route} for {topic}@{offset} in {latencyMs} ms: {preview}", {
        ...where,
        partition: job.ctx.partition,
        latencyMs: job.reply!.latencyMs,
        attempts: job.reply!.attempts,
        preview: job.reply!.text.slice(0, 200),
      });
      break;
    case "dead-lettered":
    case "dropped": {
      const failure = { ...where, stage: job.failure!.stage, class: job.failure!.class, reason: job.failure!.message };
      if (outcome === "dead-lettered") log.warn("dead-lettered {topic}@{offset}: {stage} {class}: {reason}", failure);
      else log.error("lost {topic}@{offset}: the DLQ refused its record even with the value cut: {reason}", failure);
      break;
    }
    case "skipped":
      log.debug("no route matched {topic}@{offset} in {pipeline}: skipped", where);
      break;
    case "abandoned":
      break;
  }
}

/**
 * The Kafka clients the bridge writes with: an admin, a producer, the task registry, and with an
 * exactly-once pipeline, transactional producers per input partition (offsets are per message, so
 * one such pipeline makes the whole process transactional).
 */
async function connectKafka(options: BridgeOptions, onFenced: () => void, outputs: OutputTopics) {
  const { kafka, pipelines, settings } = options;
  const exactlyOnce = pipelines.some((p) => p.delivery.guarantee === "exactly-once");
  const admin = kafka.admin();
  const producer: Producer = kafka.producer({
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  // Transactions are sized to what the broker and the output topics take.
  const limits = new RecordLimits(admin);
  const transactional = exactlyOnce
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
    await admin.connect();
    await producer.connect();
    await table.start();
    if (exactlyOnce) await limits.start();
  } catch (error) {
    await Promise.allSettled([admin.disconnect(), producer.disconnect(), table.stop()]);
    throw new FatalError(`cannot reach Kafka at ${options.brokers.join(",")}: ${errorMessage(error)}`);
  }
  return { admin, producer, table, transactional };
}
