/**
 * @module
 * What the bridge tells an operator when something changes: the counters of {@link BridgeStats},
 * the metrics, and one log line per change of an agent's circuit, of an agent's adaptive limit, of
 * an output topic's state, and per outcome of a message. Each reporter is the `onChange` of the
 * part it reports on, so the parts themselves neither log nor count.
 *
 * @example
 * ```ts
 * import { newStats, reportOutcome } from "./reports.ts";
 * import { createMetrics } from "./metrics.ts";
 * import { parsePipelineText } from "../config/load_pipelines.ts";
 * import { contextFor } from "../dispatch.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * const yaml = "name: p\nsource: {topics: [t]}\nroutes: [{name: r, invoke: {prompt_id: x}}]\n";
 * const [pipeline] = parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const record = { topic: "t", partition: 0, offset: "7", key: null, value: null, headers: {}, timestamp: "0" };
 * const job = { record, pipeline, ctx: contextFor(pipeline, record), ack: unledgered, skipped: true };
 * const stats = newStats();
 * reportOutcome(job, "skipped", { metrics: createMetrics(), stats });
 * if (stats.skipped !== 1) throw new Error("counted");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { CircuitState } from "../circuit.ts";
import type { Outcome } from "../delivery/ports.ts";
import { eventCount, type Job } from "../model.ts";
import type { Metrics } from "./metrics.ts";
import { endMessageSpan } from "./tracing.ts";

const log = getLogger(["agentstream", "bridge"]);

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

/** Every counter at 0. */
export function newStats(): BridgeStats {
  return {
    consumed: 0,
    replied: 0,
    deadLettered: 0,
    skipped: 0,
    abandoned: 0,
    dropped: 0,
    commits: 0,
    commitChecks: 0,
    rebalances: 0,
    backpressurePauses: 0,
    circuitOpenings: 0,
    refusals: 0,
    uncommittedPauses: 0,
  };
}

interface Reporting {
  metrics: Metrics;
  stats: BridgeStats;
}

/** Reports a change of an agent's (or its host's) circuit: a line for each, counted and measured. */
export function circuitReporter({ metrics, stats }: Reporting) {
  return ({ key, label, state, reason }: { key: string; label: string; state: CircuitState; reason?: string }) => {
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
  };
}

/**
 * Reports an agent's adaptive limit: the gauge has every move, a log line comes when the limit has
 * doubled or halved since the last line, at most every 10 s.
 */
export function concurrencyReporter({ metrics }: Pick<Reporting, "metrics">) {
  const logged = new Map<string, { limit: number; at: number }>();
  return (
    { label, limit, previous, floorMs }: { label: string; limit: number; previous: number; floorMs?: number },
  ) => {
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
  };
}

/** Reports an output topic that cannot be written (one ERROR line, with what to do), and its recovery. */
export function outputReporter({ metrics }: Pick<Reporting, "metrics">, help: Readonly<Record<string, string>>) {
  return (topic: string, reason: string | undefined, how: string | undefined, writers: ReadonlySet<string>) => {
    metrics.outputUnwritable(topic, reason !== undefined);
    const pipelines = [...writers];
    if (reason) {
      log.error(
        "cannot write to {topic}: {help}. Pipelines {pipelines} pause until it can (nothing past their waiting messages is committed), probing",
        { topic, reason, help: help[reason], pipelines },
      );
    } else if (how === "forgotten") {
      log.info("no record waits for {topic} any more (their messages come again): the next one tries it", { topic });
    } else log.info("{topic} can be written again: resuming {pipelines}", { topic, pipelines });
  };
}

/** The counter each outcome adds to. */
const OUTCOME_STAT = {
  replied: "replied",
  "dead-lettered": "deadLettered",
  skipped: "skipped",
  abandoned: "abandoned",
  dropped: "dropped",
} as const satisfies Record<Outcome, keyof BridgeStats>;

/** Reports one outcome: its metrics and span, a log line for it (each event's, for a window), its counter. */
export function reportOutcome(job: Job, outcome: Outcome, { metrics, stats }: Reporting): void {
  // A failed window's events went to the DLQ one by one: each is counted and logged as its own.
  const events = job.eventOutcomes;
  metrics.outcome(job, outcome, events?.filter((event) => event.outcome === "dropped").length);
  endMessageSpan(job, outcome);
  for (const event of events ?? [{ job, outcome }]) {
    logOutcome(event.job, event.outcome);
    // A window's events count one each, except in replies: one per window.
    stats[OUTCOME_STAT[event.outcome]] += event.outcome === "replied" ? 1 : eventCount(event.job);
  }
}

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
