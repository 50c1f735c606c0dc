/**
 * The bridge: source → dispatch → decode → match → transform → invoke → publish, with offsets
 * committed only for messages whose every outcome the broker has acknowledged.
 *
 * Flow control lives here: fetching pauses while `maxInFlight` messages are unfinished or an
 * agent's circuit is open, and resumes when work drains or the agent is back. A rebalance commits
 * what is finished and drops the rest, which Kafka then delivers again.
 *
 * @example
 * ```ts
 * import { startBridge } from "./bridge.ts";
 * // const bridge = await startBridge({ kafka, pipelines, settings, archestraUrl: "http://localhost:9000" });
 * // Deno.addSignalListener("SIGTERM", () => bridge.stop());
 * // await bridge.done;
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { type Kafka, Partitioners } from "kafkajs";
import { AgentCards } from "./a2a/agent_cards.ts";
import { AgentLimits } from "./a2a/agent_limits.ts";
import { Circuit } from "./a2a/circuit.ts";
import type { Settings } from "./config/settings.ts";
import { dispatch, pipelinesFor } from "./dispatch.ts";
import { errorMessage, FatalError } from "./errors.ts";
import { KafkaSource } from "./kafka/source.ts";
import { ensureOutputTopics, kafkaPublisher } from "./kafka/sink.ts";
import { KafkaTaskRegistry } from "./kafka/task_registry.ts";
import { TransactionalOutput } from "./kafka/transactions.ts";
import { outputTopicTest } from "./kafka/topics.ts";
import { redact } from "./secrets.ts";
import type { Job, Pipeline } from "./model.ts";
import { OffsetTracker, type TopicPartitionOffset } from "./offsets.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";
import { endMessageSpan } from "./ops/tracing.ts";
import { decode } from "./stages/decode.ts";
import { fanOut } from "./stages/fan_out.ts";
import { agentEndpoint, invoke } from "./stages/invoke.ts";
import { match } from "./stages/match.ts";
import { type Outcome, publish } from "./stages/publish.ts";
import { transform } from "./stages/transform.ts";

const log = getLogger(["agentstream", "bridge"]);

export interface BridgeOptions {
  kafka: Kafka;
  /** For messages only: where the kafka client connects. */
  brokers: readonly string[];
  pipelines: readonly Pipeline[];
  settings: Pick<
    Settings,
    | "groupId"
    | "topics"
    | "autoOffsetReset"
    | "topicRefreshMs"
    | "sessionTimeoutMs"
    | "commitIntervalMs"
    | "archestraToken"
    | "archestraApi"
    | "maxInFlight"
    | "shutdownGraceMs"
    | "circuitFailures"
    | "transactionalId"
    | "tasksTopic"
  >;
  archestraUrl: string;
  /** First pause before probing an agent whose circuit is open (default 1 s, doubling up to the max). */
  probeDelayMs?: number;
  /** Longest pause between probes (default 10 s): bounds how long a recovered agent waits to be noticed. */
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
  /** Commits that stored offsets. */
  commits: number;
  /** Commit cycles run, including those that found nothing new to store. */
  commitChecks: number;
  rebalances: number;
  /** Times fetching paused because `maxInFlight` messages were unfinished. */
  backpressurePauses: number;
  /** Times an agent's circuit opened because every call failed. */
  circuitOpenings: number;
  /** Times an agent began to refuse the bridge (its token, or the agent itself, unknown to it). */
  refusals: number;
}

/** What `/readyz` reports: each check, and whether all of them pass. */
export interface Readiness {
  ready: boolean;
  /** The consumer is a member of its group (so the brokers answer), or waits for its topics to exist. */
  kafka: boolean;
  /** No agent has its circuit open: none fails every call, none refuses the bridge. */
  agents: boolean;
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
  archestra: Parameters<typeof agentEndpoint>[1],
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
  // One exactly-once pipeline makes the whole process transactional: offsets are per message, not per pipeline.
  const exactlyOnce = pipelines.some((p) => p.delivery.guarantee === "exactly-once");
  const admin = kafka.admin();
  const producer = kafka.producer({
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
    ...(exactlyOnce
      ? {
        transactionalId: settings.transactionalId ?? `${settings.groupId}-${Deno.hostname()}`,
        idempotent: true,
        maxInFlightRequests: 1,
      }
      : {}),
  });
  const transactional = exactlyOnce ? new TransactionalOutput(producer, settings.groupId) : undefined;
  const archestra = {
    archestraUrl: options.archestraUrl,
    archestraToken: settings.archestraToken,
    archestraApi: settings.archestraApi,
  };
  const limits = agentLimits(pipelines, archestra);
  const tasks = new KafkaTaskRegistry({ kafka, topic: settings.tasksTopic, groupId: settings.groupId });
  try {
    await admin.connect();
    await producer.connect();
    await tasks.start();
  } catch (error) {
    await Promise.allSettled([admin.disconnect(), producer.disconnect(), tasks.stop()]);
    throw new FatalError(`cannot reach Kafka at ${options.brokers.join(",")}: ${errorMessage(error)}`);
  }

  const stats: BridgeStats = {
    consumed: 0,
    replied: 0,
    deadLettered: 0,
    skipped: 0,
    abandoned: 0,
    commits: 0,
    commitChecks: 0,
    rebalances: 0,
    backpressurePauses: 0,
    circuitOpenings: 0,
    refusals: 0,
  };
  const tracker = new OffsetTracker();
  const metrics = options.metrics ?? createMetrics();
  metrics.inFlightFrom(() => tracker.pending);
  const stopping = Promise.withResolvers<void>();
  const abort = new AbortController();

  // Commits run one at a time, in the order they were asked for. With exactly-once delivery a
  // commit is a transaction holding the staged records and the offsets they settle, taken together.
  type Snapshot = { offsets: TopicPartitionOffset[]; records: ReturnType<TransactionalOutput["take"]> };
  const snapshot = (): Snapshot => ({ records: transactional?.take() ?? [], offsets: tracker.committable() });
  let committing = Promise.resolve();
  let broken = false;
  const commitNow = async ({ offsets, records }: Snapshot) => {
    stats.commitChecks++;
    if (broken || (!offsets.length && !records.length)) return;
    if (transactional) {
      try {
        await transactional.commit(records, offsets);
      } catch (error) {
        // The staged records are gone with the aborted transaction: stop before committing anything
        // else. Their messages are handled again by the next run.
        broken = true;
        void shutdown(new FatalError(`a transaction failed: ${errorMessage(error)}`));
        return;
      }
    } else {
      try {
        await source.commit(offsets);
      } catch (error) {
        log.warn("commit failed, will try again: {error}", { error: errorMessage(error) });
        return;
      }
    }
    tracker.markCommitted(offsets);
    forgetCommittedTasks(offsets);
    metrics.committed(offsets);
    stats.commits++;
    log.debug("committed {offsets}", { offsets });
  };
  const commitSnapshot = (taken: Snapshot) => committing = committing.then(() => commitNow(taken));
  // The snapshot is taken when the commit runs, so it includes what finished while it waited.
  const commit = () => committing = committing.then(() => commitNow(snapshot()));

  // Fetching pauses while any reason holds.
  const pauseReasons = new Set<string>();
  const pauseFor = (reason: string, on: boolean) => {
    if (on === pauseReasons.has(reason)) return;
    if (on) pauseReasons.add(reason);
    else pauseReasons.delete(reason);
    if (pauseReasons.size) source.pause();
    else source.resume();
  };
  const checkInFlight = () => {
    if (tracker.pending >= settings.maxInFlight && !pauseReasons.has("in-flight")) {
      stats.backpressurePauses++;
      log.debug("{pending} messages in flight: pausing fetches", { pending: tracker.pending });
      pauseFor("in-flight", true);
    } else if (tracker.pending <= settings.maxInFlight / 2) {
      pauseFor("in-flight", false);
    }
  };

  // Circuits: one per agent host for outages (a host that is down is down for every agent on it),
  // one per endpoint for refusals (a token refused by one agent says nothing of the others).
  const circuits = new Map<string, Circuit>();
  const circuitOf = (key: string, label: string, threshold: number) => {
    let circuit = circuits.get(key);
    if (!circuit) {
      circuit = new Circuit({
        threshold,
        probeDelayMs: options.probeDelayMs,
        maxProbeDelayMs: options.maxProbeDelayMs ?? 10_000,
        onChange: (open, state, reason) => {
          if (state === "down") stats.circuitOpenings++;
          if (state === "refused") stats.refusals++;
          metrics.circuit(label, state);
          if (state === "refused") {
            log.error("agent {agent} refuses the bridge ({reason}): its routes wait, probing until it accepts", {
              agent: label,
              reason,
            });
          } else if (state === "down") {
            log.warn("agent {agent} is failing every call: pausing, probing", { agent: label });
          } else log.warn("agent {agent} answers again: resuming", { agent: label });
          pauseFor(`circuit ${key}`, open);
        },
      });
      circuits.set(key, circuit);
    }
    return circuit;
  };
  const circuitFor = (url: string) => {
    const origin = new URL(url).origin;
    return circuitOf(`host ${origin}`, redact(origin), settings.circuitFailures);
  };
  // Labelled without credentials or query (where a key may sit in a form redact() does not know).
  const refusalFor = (url: string) => {
    const { origin, pathname } = new URL(url);
    return circuitOf(`endpoint ${url}`, redact(origin + pathname), Number.POSITIVE_INFINITY);
  };
  const isCurrent = (job: Job) => job.generation === undefined || job.generation === tracker.generation;

  const subscriptions = settings.topics ?? [...new Set(pipelines.flatMap((p) => p.topics))];
  const source = new KafkaSource({
    kafka,
    admin,
    groupId: settings.groupId,
    subscriptions,
    isOutput: outputTopicTest(pipelines),
    fromBeginning: settings.autoOffsetReset === "earliest",
    refreshMs: settings.topicRefreshMs,
    sessionTimeoutMs: settings.sessionTimeoutMs,
    onBatch: (batch) => {
      const targets = pipelinesFor(pipelines, batch.topic);
      for (const record of batch.records) {
        tracker.register(batch.topic, batch.partition, record.offset, targets.length);
      }
      stats.consumed += batch.records.length;
      for (const pipeline of targets) metrics.consumed(pipeline.name, batch.records.length);
      if (batch.highWatermark !== undefined) {
        metrics.highWatermark(batch.topic, batch.partition, batch.highWatermark);
      }
      checkInFlight();
      return tracker.generation;
    },
    onRebalance: () => {
      stats.rebalances++;
      // Synchronously, before kafkajs rejoins: what is finished is committed, the rest dropped.
      const finished = snapshot();
      tracker.reset();
      held.clear();
      metrics.forgetPartitions();
      void commitSnapshot(finished);
      checkInFlight();
    },
    room: async () => {
      // At a stop, waiting work may be abandoned and never finish: stop waiting for room then.
      await Promise.race([tracker.below(settings.maxInFlight), stopping.promise]);
      return settings.maxInFlight - tracker.pending;
    },
    drain: async () => {
      await Promise.race([tracker.idle(), stopping.promise]);
      await commit();
    },
    onSubscribe: (topics) => ensureOutputTopics(admin, pipelines, topics),
  });

  // With exactly-once delivery: records of messages that still wait for other outcomes.
  const held = new Map<string, NonNullable<Job["staged"]>>();
  // Agent tasks that ended, to be forgotten once their message's offset is committed: forgotten
  // earlier, a crash before the commit would send the message to the agent again.
  let finishedTasks: { topic: string; partition: number; offset: bigint; key: string }[] = [];
  const forgetCommittedTasks = (offsets: readonly TopicPartitionOffset[]) => {
    const committed = new Map(offsets.map((o) => [`${o.topic}\u0000${o.partition}`, BigInt(o.offset)]));
    finishedTasks = finishedTasks.filter((task) => {
      const point = committed.get(`${task.topic}\u0000${task.partition}`);
      if (point === undefined || task.offset >= point) return true;
      tasks.forget(task.key);
      return false;
    });
  };

  const record = (job: Job, outcome: Outcome) => {
    metrics.outcome(job, outcome);
    endMessageSpan(job, outcome);
    const where = { pipeline: job.ctx.pipeline, route: job.route?.name, topic: job.ctx.topic, offset: job.ctx.offset };
    switch (outcome) {
      case "replied":
        stats.replied++;
        log.info("reply from {route} for {topic}@{offset} in {latencyMs} ms: {preview}", {
          ...where,
          partition: job.ctx.partition,
          latencyMs: job.reply!.latencyMs,
          attempts: job.reply!.attempts,
          preview: job.reply!.text.slice(0, 200),
        });
        break;
      case "dead-lettered":
        stats.deadLettered++;
        log.warn("dead-lettered {topic}@{offset}: {stage} {class}: {reason}", {
          ...where,
          stage: job.failure!.stage,
          class: job.failure!.class,
          reason: job.failure!.message,
        });
        break;
      case "skipped":
        stats.skipped++;
        log.debug("no route matched {topic}@{offset} in {pipeline}: skipped", where);
        break;
      case "abandoned":
        stats.abandoned++;
        return; // not done: stays uncommitted and is consumed again
    }
    const { topic, partition, offset } = job.ctx;
    if (tracker.done(topic, partition, offset, job.generation)) {
      // A message with several outcomes (several pipelines, or a fan-out) stages its records only
      // when the last is in, in the same turn as its offset becomes committable: a transaction holds
      // a message's records exactly when it holds the offset that settles them.
      if (transactional) {
        const id = `${topic}\u0000${partition}\u0000${offset}`;
        const records = [...held.get(id) ?? [], ...job.staged ?? []];
        if (tracker.outstanding(topic, partition, offset) > 0) held.set(id, records);
        else {
          held.delete(id);
          transactional.stage(records);
        }
      }
      // Its agent task, if it had one, is over: forgotten once the offset is committed.
      if (tasks.get(job.ctx.messageId)) {
        finishedTasks.push({ topic, partition, offset: BigInt(offset), key: job.ctx.messageId });
      }
    }
    checkInFlight();
  };

  // A job split over several agents leaves its message unfinished until every part has its outcome.
  const split = (job: Job, extra: number) => {
    if (!isCurrent(job)) return false;
    tracker.register(job.ctx.topic, job.ctx.partition, job.ctx.offset, extra);
    return true;
  };
  const outcomes = publish(
    invoke(fanOut(transform(match(decode(dispatch(source.batches(), pipelines)))), split), {
      ...archestra,
      signal: abort.signal,
      circuitFor,
      refusalFor,
      isCurrent,
      tasks,
      limits,
      cards: new AgentCards(),
    }),
    { ...(transactional?.publishContext() ?? kafkaPublisher(producer)), isCurrent },
  );

  const run = (async () => {
    for await (const { job, outcome } of outcomes) record(job, outcome);
  })();

  let timer: ReturnType<typeof setInterval> | undefined = undefined;
  let endsTimer: ReturnType<typeof setInterval> | undefined = undefined;
  let stopped: Promise<void> | undefined;
  const shutdown = (reason?: unknown) => {
    stopped ??= (async () => {
      stopping.resolve();
      await source.close();
      // Calls still waiting on an open circuit, or running past the grace period, are abandoned.
      const grace = setTimeout(() => abort.abort(), settings.shutdownGraceMs);
      const result = await run.then(() => undefined, (error) => error);
      clearTimeout(grace);
      clearInterval(timer);
      clearInterval(endsTimer);
      for (const circuit of circuits.values()) circuit.dispose();
      // Only what finished is committed; a failure above leaves the rest for the next run.
      await commit();
      await Promise.allSettled([source.disconnect(), producer.disconnect(), admin.disconnect(), tasks.stop()]);
      const cause = reason ?? result;
      if (cause) throw cause instanceof FatalError ? cause : new FatalError(`stopped: ${errorMessage(cause)}`);
    })();
    return stopped;
  };

  try {
    await source.start();
  } catch (error) {
    await shutdown().catch(() => {});
    throw new FatalError(`cannot consume from Kafka at ${options.brokers.join(",")}: ${errorMessage(error)}`);
  }
  timer = setInterval(commit, settings.commitIntervalMs);
  // Log end offsets come with each fetch; while fetching is paused (an agent outage, backpressure)
  // they are asked for, so consumer lag keeps growing where it grows.
  endsTimer = setInterval(async () => {
    try {
      for (const topic of source.topics) {
        for (const { partition, high } of await admin.fetchTopicOffsets(topic)) {
          metrics.highWatermark(topic, partition, high);
        }
      }
    } catch (error) {
      log.debug("could not read log end offsets: {error}", { error: errorMessage(error) });
    }
  }, settings.topicRefreshMs);

  // The pipeline ending by itself means the source failed or a reply could not be written.
  const done = run.then(() => shutdown(), (error) => shutdown(error));
  done.catch(() => {});

  return {
    stats,
    metrics,
    readiness: () => {
      const kafka = source.joined || source.topics.length === 0;
      const agents = [...circuits.values()].every((circuit) => !circuit.open);
      return { ready: kafka && agents && !stopped, kafka, agents, topics: source.topics.length };
    },
    topics: () => source.topics,
    refreshTopics: () => source.refresh(),
    stop: async () => {
      await shutdown().catch(() => {});
    },
    done,
  };
}
