/**
 * @module
 * The bridge's Prometheus metrics (prom-client), labelled by pipeline and route. The bridge reports
 * events here; the ops server ({@link startOpsServer}) serves {@link Metrics.registry} on `/metrics`.
 * Message outcomes are counted once, when a job's outcome is settled, from the job itself: the
 * counters and the DLQ records agree because both read the same {@link StageFailure}.
 *
 * @example
 * ```ts
 * import { createMetrics } from "./metrics.ts";
 * const metrics = createMetrics();
 * metrics.consumed("orders", 3);
 * console.log(await metrics.registry.metrics()); // agentstream_messages_consumed_total{pipeline="orders"} 3 ...
 * ```
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { eventCount, type Job, jobAgent, partitionId } from "../model.ts";
import { redact } from "../secrets.ts";
import type { TopicPartitionOffset } from "../delivery/offsets.ts";
import type { Outcome } from "../delivery/ports.ts";
import type { CircuitState } from "../circuit.ts";

export interface Metrics {
  readonly registry: Registry;
  /** Messages taken from Kafka for a pipeline. */
  consumed(pipeline: string, count: number): void;
  /**
   * A job's settled outcome: matched, skipped, invoked, retried, replied or dead-lettered. A failed
   * window's events count one each, `dropped` of them dropped (the DLQ refused their records).
   */
  outcome(job: Job, outcome: Outcome, dropped?: number): void;
  /** The partition's log end offset as the last fetch saw it. */
  highWatermark(topic: string, partition: number, offset: string): void;
  /** Offsets just committed (the next offset to read, per partition). */
  committed(offsets: readonly TopicPartitionOffset[]): void;
  /** Partitions may have moved (a rebalance): forget their lag until they are seen again. */
  forgetPartitions(): void;
  /** An agent's circuit changed: closed, down (failing every call) or refused (refusing the bridge). */
  circuit(agent: string, state: CircuitState): void;
  /** Where the in-flight gauge reads its value. */
  inFlightFrom(read: () => number): void;
  /** Where the gauge of bytes waiting behind commit points reads its value. */
  uncommittedFrom(read: () => number): void;
  /** An output topic cannot be written (missing, or denied by an ACL), or can again. */
  outputUnwritable(topic: string, unwritable: boolean): void;
  /** A partition paused (or resumed) because of what waits behind its commit point. */
  partitionHeld(topic: string, partition: number, paused: boolean): void;
  /** An agent endpoint's adaptive concurrency limit (`delivery.concurrency: auto`) is now `limit`. */
  concurrencyLimit(agent: string, limit: number): void;
}

/** Agent latency buckets, in seconds: calls take from milliseconds (demo) to minutes (LLM tools). */
const LATENCY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A fresh set of metrics in a registry of its own (one per bridge, so tests can run several). */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const byRoute = ["pipeline", "route"] as const;
  // What reaches an agent is also counted by agent (prompt id or URL): a route may call several.
  const byAgent = [...byRoute, "agent"] as const;
  const consumed = new Counter({
    name: "agentstream_messages_consumed_total",
    help: "Messages consumed from Kafka, per pipeline that takes them.",
    labelNames: ["pipeline"],
    registers,
  });
  const matched = new Counter({
    name: "agentstream_messages_matched_total",
    help: "Messages a route matched.",
    labelNames: byRoute,
    registers,
  });
  const skipped = new Counter({
    name: "agentstream_messages_skipped_total",
    help: "Messages no route matched, skipped and committed.",
    labelNames: ["pipeline"],
    registers,
  });
  const invoked = new Counter({
    name: "agentstream_messages_invoked_total",
    help: "Messages sent to an agent (once each, however many attempts).",
    labelNames: byAgent,
    registers,
  });
  const retries = new Counter({
    name: "agentstream_agent_retries_total",
    help: "Agent calls retried after a transient failure.",
    labelNames: byAgent,
    registers,
  });
  const resent = new Counter({
    name: "agentstream_messages_resent_total",
    help: "Messages sent again under a new id because the agent had already seen their id (a redelivery).",
    labelNames: byAgent,
    registers,
  });
  const replied = new Counter({
    name: "agentstream_messages_replied_total",
    help: "Replies written to a responses topic and acknowledged.",
    labelNames: byAgent,
    registers,
  });
  const deadLettered = new Counter({
    name: "agentstream_messages_dead_lettered_total",
    help: "Messages written to a dead-letter topic, by the stage that failed and the failure class.",
    labelNames: [...byAgent, "stage", "class"],
    registers,
  });
  const dropped = new Counter({
    name: "agentstream_messages_dropped_total",
    help:
      "Messages whose DLQ record the broker refused even with its value cut: logged and committed, nothing written.",
    labelNames: [...byAgent, "stage", "class"],
    registers,
  });
  const latency = new Histogram({
    name: "agentstream_agent_latency_seconds",
    help: "Time from the first call to the agent's answer, retries included, for replied messages.",
    labelNames: byAgent,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  let readInFlight = () => 0;
  new Gauge({
    name: "agentstream_messages_in_flight",
    help: "Messages consumed and not yet finished (their offsets are not yet committable).",
    registers,
    collect() {
      this.set(readInFlight());
    },
  });
  let readUncommitted = () => 0;
  new Gauge({
    name: "agentstream_uncommitted_bytes",
    help:
      "Bytes of finished messages (with exactly-once, their replies) waiting behind unfinished ones for their partitions' commit points.",
    registers,
    collect() {
      this.set(readUncommitted());
    },
  });
  const partitionHeld = new Gauge({
    name: "agentstream_partition_held",
    help:
      "1 while a partition is paused because what waits behind its commit point reached its share of KAFKA_MAX_UNCOMMITTED_BYTES, else 0.",
    labelNames: ["topic", "partition"],
    registers,
  });
  const unwritable = new Gauge({
    name: "agentstream_output_unwritable",
    help:
      "1 while an output topic cannot be written (it does not exist and is not created, or an ACL denies WRITE): the pipelines writing it pause; else 0.",
    labelNames: ["topic"],
    registers,
  });
  const circuitOpen = new Gauge({
    name: "agentstream_circuit_open",
    help: "1 while an agent's circuit is open (failing every call, or refusing the bridge: its routes wait), else 0.",
    labelNames: ["agent"],
    registers,
  });
  const refused = new Gauge({
    name: "agentstream_agent_refused",
    help: "1 while an agent refuses the bridge (token refused, agent or method unknown: its routes wait), else 0.",
    labelNames: ["agent"],
    registers,
  });
  const refusals = new Counter({
    name: "agentstream_agent_refusals_total",
    help: "Times an agent began to refuse the bridge.",
    labelNames: ["agent"],
    registers,
  });
  const concurrencyLimit = new Gauge({
    name: "agentstream_agent_concurrency_limit",
    help:
      "Calls an agent endpoint may have in flight at once, as its adaptive limit (delivery.concurrency: auto) has it now.",
    labelNames: ["agent"],
    registers,
  });
  // Lag = log end offset − committed offset, per partition, as Kafka's own tools count it.
  const ends = new Map<string, { topic: string; partition: number; end: bigint }>();
  const commits = new Map<string, bigint>();
  new Gauge({
    name: "agentstream_consumer_lag",
    help: "Messages between the committed offset and the log end offset, as of the last fetch.",
    labelNames: ["topic", "partition"],
    registers,
    collect() {
      this.reset();
      for (const [id, { topic, partition, end }] of ends) {
        const committed = commits.get(id);
        if (committed !== undefined) this.set({ topic, partition }, Number(end > committed ? end - committed : 0n));
      }
    },
  });
  const id = partitionId;

  return {
    registry,
    consumed: (pipeline, count) => consumed.inc({ pipeline }, count),
    outcome(job, outcome, droppedEvents) {
      if (outcome === "abandoned") return; // not finished: it is consumed and counted again
      const pipeline = job.pipeline.name;
      if (outcome === "skipped") return skipped.inc({ pipeline });
      const labels = { pipeline, route: job.route?.name ?? "" };
      const agent = jobAgent(job);
      const agentLabels = { ...labels, agent: agent ? agent.promptId ?? redact(agent.url) : "" };
      // A fanned-out message is matched once (its first part), and reaches each agent once.
      // A window's events count one each, except in replies: one per window.
      const events = eventCount(job);
      if (job.route && (!job.agent || job.agent === job.route.agents[0])) matched.inc(labels, events);
      const attempts = job.reply?.attempts ?? job.failure?.attempts ?? 0;
      if (attempts > 0) invoked.inc(agentLabels);
      if (attempts > 1) retries.inc(agentLabels, attempts - 1);
      if (outcome === "replied") {
        replied.inc(agentLabels);
        if (job.reply!.resent) resent.inc(agentLabels);
        latency.observe(agentLabels, job.reply!.latencyMs / 1000);
      } else {
        const failed = { ...agentLabels, stage: job.failure!.stage, class: job.failure!.class };
        const lost = droppedEvents ?? (outcome === "dropped" ? events : 0);
        if (events > lost) deadLettered.inc(failed, events - lost);
        if (lost) dropped.inc(failed, lost);
      }
    },
    highWatermark(topic, partition, offset) {
      ends.set(id(topic, partition), { topic, partition, end: BigInt(offset) });
    },
    committed(offsets) {
      for (const { topic, partition, offset } of offsets) commits.set(id(topic, partition), BigInt(offset));
    },
    forgetPartitions() {
      ends.clear();
      commits.clear();
    },
    circuit(agent, state) {
      circuitOpen.set({ agent }, state === "closed" ? 0 : 1);
      refused.set({ agent }, state === "refused" ? 1 : 0);
      if (state === "refused") refusals.inc({ agent });
    },
    inFlightFrom(read) {
      readInFlight = read;
    },
    uncommittedFrom(read) {
      readUncommitted = read;
    },
    outputUnwritable: (topic, flag) => unwritable.set({ topic }, flag ? 1 : 0),
    partitionHeld: (topic, partition, paused) => partitionHeld.set({ topic, partition }, paused ? 1 : 0),
    concurrencyLimit: (agent, limit) => concurrencyLimit.set({ agent }, limit),
  };
}
