/**
 * @module
 * invoke: sends each job's text to its route's agent (A2A `message/send`). With
 * `delivery.concurrency: auto` (the default) each agent endpoint admits as many calls at once as its
 * adaptive limit allows (see {@link AdaptiveLimit}), at most `max_concurrency` per pipeline; a number
 * is a fixed cap per pipeline. Jobs with the same ordering key (`delivery.ordering`) run one after
 * another while other keys go on. Transient failures are retried with exponential
 * backoff and jitter (honouring `Retry-After`) and end `exhausted` when the retries are spent;
 * while the agent's circuit is open (see {@link Circuit}) calls wait instead, without spending
 * retries. A call that takes more than four times the pipeline's median (at least 250 ms) stops
 * counting against its concurrency (see {@link KeyedQueue}), so rare slow calls do not starve the
 * rest. Jobs come out in the order their calls finish.
 *
 * A message that spends its retries while nobody else got an answer either is either an outage
 * or a message the agent cannot take: the agent's card, asked afresh, tells which. An agent that
 * answers fails the message as `exhausted`; one that does not opens its circuit.
 *
 * @example
 * ```ts
 * import { invoke } from "./invoke.ts";
 * // for await (const job of invoke(transform(match(decode(jobs))), { archestraUrl: "http://localhost:9000" }))
 * //   console.log(job.reply?.text ?? job.failure?.message);
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage, failure } from "../errors.ts";
import type { RunningTask, TaskRegistry } from "../kafka/task_registry.ts";
import { type AgentTarget, isLive, type Job, jobAgent, orderingKey, type Pipeline } from "../model.ts";
import { Circuit } from "../a2a/circuit.ts";
import type { AgentCards } from "../a2a/agent_cards.ts";
import type { AgentLimits } from "../a2a/agent_limits.ts";
import type { AgentConcurrency } from "../a2a/agent_concurrency.ts";
import type { AdaptiveLimit, LimitSample } from "../a2a/adaptive_limit.ts";
import { sendMessage } from "../a2a/send_message.ts";
import type { A2AVersion, OutgoingMessage } from "../a2a/dialect.ts";
import { abortableDelay } from "../util/abortable_delay.ts";
import { agentCallTraceparent, withJobSpan } from "../ops/tracing.ts";
import { mapUnordered } from "../util/concurrent.ts";
import { KeyedQueue } from "../util/keyed_queue.ts";
import { LatencyWindow } from "../util/latency_window.ts";
import { nameBasedUuid } from "../util/uuid.ts";
import { guarded } from "./stage.ts";

const log = getLogger(["agentstream", "invoke"]);

export interface InvokeContext {
  /** Base URL for `prompt_id` routes: calls go to `{archestraUrl}/{archestraApi}/a2a/{prompt_id}`. */
  readonly archestraUrl: string;
  readonly archestraToken?: string;
  /** Archestra's endpoint for prompt ids: `v1` (A2A 0.3 shapes, the default) or `v2` (A2A 1.0). */
  readonly archestraApi?: "v1" | "v2";
  /** Cancels calls and retry waits at shutdown; the jobs cut short are marked `abandoned`. */
  readonly signal?: AbortSignal;
  /** The circuit of an agent's host, which opens while it fails every call; by default none (never opens). */
  readonly circuitFor?: (url: string) => Circuit;
  /**
   * The circuit of one agent endpoint, which opens while the agent refuses the caller (a token or
   * agent id it does not accept); by default none, and a refusal fails the job as `refused`.
   */
  readonly refusalFor?: (url: string) => Circuit;
  /** Agent cards: whether an agent streams, its A2A version, and whether it is up. */
  readonly cards?: AgentCards;
  /** Limits on agents, shared by every pipeline (calls wait here until their agent allows them). */
  readonly limits?: AgentLimits;
  /** Adaptive limits per agent endpoint, for pipelines with `delivery.concurrency: auto`; by default none. */
  readonly concurrency?: AgentConcurrency;
  /** Where tasks the agent is still working on are recorded, to be resumed after a restart. */
  readonly tasks?: TaskRegistry;
  /** For tests: waits between retries. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** For tests: jitter source in [0, 1). */
  readonly random?: () => number;
}

/**
 * The endpoint and token a route calls, and the A2A version it speaks where the endpoint alone says
 * (Archestra's `/v1` speaks 0.3, its `/v2` 1.0); an agent given by URL says so in its card.
 */
export function agentEndpoint(
  agent: AgentTarget,
  ctx: Pick<InvokeContext, "archestraUrl" | "archestraToken" | "archestraApi">,
): { url: string; token?: string; version?: A2AVersion } {
  if (agent.url !== undefined) return { url: agent.url, token: agent.token };
  const api = ctx.archestraApi ?? "v1";
  return {
    url: `${ctx.archestraUrl}/${api}/a2a/${encodeURIComponent(agent.promptId)}`,
    token: ctx.archestraToken,
    version: api === "v2" ? "1.0" : "0.3",
  };
}

/** The A2A message for a job, with a message id that is stable across redeliveries. */
export function buildMessage(job: Job): OutgoingMessage {
  const { ctx } = job;
  const key = job.record.key;
  const contextId = job.route?.context === "key" && key !== null ? contextIdFor(ctx.pipeline, key) : undefined;
  return {
    messageId: ctx.messageId,
    ...(contextId ? { contextId } : {}),
    text: job.text ?? "",
    metadata: {
      topic: ctx.topic,
      partition: ctx.partition,
      offset: ctx.offset,
      key: ctx.key,
      pipeline: ctx.pipeline,
      route: job.route?.name ?? null,
      correlation_id: ctx.correlationId,
    },
  };
}

/**
 * The A2A contextId of a Kafka key in a pipeline (`invoke.context: key`): the same for every message
 * with that key, so the agent sees one conversation per customer, order or device. Derived from the
 * key's bytes, so two binary keys never share a conversation (a text key gives the id of its UTF-8).
 */
export function contextIdFor(pipeline: string, key: string | Uint8Array): string {
  return nameBasedUuid(`context\n${pipeline}\n`, key);
}

/** The wait before retry number `retry` (1-based): doubling from `backoffMs`, capped, half jittered. */
export function backoffDelay(
  retry: number,
  retries: Pipeline["delivery"]["retries"],
  random: () => number,
): number {
  const full = Math.min(retries.maxBackoffMs, retries.backoffMs * 2 ** (retry - 1));
  return full / 2 + (full / 2) * random();
}

const noCircuit = new Circuit({ threshold: Number.POSITIVE_INFINITY });

/** What a call's outcome says about the agent's capacity: its latency, or that it was overloaded. */
export function limitSample(
  outcome: { reply: unknown } | { failure: { overload?: boolean } },
  latencyMs: number,
): LimitSample | undefined {
  if ("reply" in outcome) return { latencyMs, overload: false };
  return outcome.failure.overload ? { latencyMs, overload: true } : undefined;
}

/** The adaptive limit a job's calls go through, if its pipeline has `concurrency: auto`. */
function adaptiveLimit(job: Job, url: string, ctx: InvokeContext): AdaptiveLimit | undefined {
  const { concurrency, maxConcurrency } = job.pipeline.delivery;
  return concurrency === "auto" ? ctx.concurrency?.limitFor(url, maxConcurrency) : undefined;
}

/** Calls the agent for one live job, retrying as its pipeline allows; fills `reply` or `failure`. */
export async function invokeJob(job: Job, ctx: InvokeContext): Promise<Job> {
  const route = job.route!;
  const endpoint = agentEndpoint(jobAgent(job)!, ctx);
  const { url, token } = endpoint;
  const retries = job.pipeline.delivery.retries;
  const sleep = ctx.sleep ?? abortableDelay;
  const circuit = ctx.circuitFor?.(url) ?? noCircuit;
  const refusal = ctx.refusalFor?.(url) ?? noCircuit;
  const adaptive = adaptiveLimit(job, url, ctx);
  const message = buildMessage(job);
  const taskKey = job.ctx.messageId;
  const stream = route.stream && ctx.cards !== undefined && await ctx.cards.streams(url, token);
  // From the first call made: waiting for a circuit or a concurrency slot is ours, not the agent's.
  let started: number | undefined;
  const successesBefore = circuit.successes;
  for (let attempt = 1;;) {
    // Past a refusal first (per endpoint), then past an outage (per host).
    const asked = await refusal.acquire(ctx.signal);
    const role = await circuit.acquire(ctx.signal);
    // A call that will not be made hands the probe on: a probe never answered would keep the circuit shut.
    const handOn = () => {
      if (role === "probe") circuit.failed("probe");
      if (asked === "probe") refusal.failed("probe");
    };
    // Shutting down, or the assignment changed (Kafka delivers the message again): no more calls.
    if (ctx.signal?.aborted || job.ack.stale) {
      handOn();
      job.abandoned = true;
      return job;
    }
    let outcome: Awaited<ReturnType<typeof sendMessage>>;
    try {
      // Read each attempt: a card that could not be fetched at first may be there now.
      const version = route.a2a ?? endpoint.version ?? await ctx.cards?.version(url, token) ?? "0.3";
      // A task the agent already works on for this message (from an earlier run or attempt) is
      // polled, not started again.
      const running = ctx.tasks?.get(taskKey);
      const resumeTaskId = running?.url === url ? running.taskId : undefined;
      const call = () =>
        withJobSpan(job, () =>
          sendMessage({
            url,
            token,
            version,
            message,
            timeoutMs: route.timeoutMs,
            longRunning: route.longRunning,
            signal: ctx.signal,
            traceparent: agentCallTraceparent(job),
            resumeTaskId,
            stream,
            onTask: ctx.tasks && ((taskId) => rememberTask(ctx.tasks!, taskKey, { taskId, url })),
          }));
      await adaptive?.acquire(ctx.signal);
      let sample: LimitSample | undefined;
      try {
        // The assignment may have changed while the call waited for its slot.
        if (job.ack.stale) {
          handOn();
          job.abandoned = true;
          return job;
        }
        // Timed from when the call goes out: waiting for a slot or for agent_limits is ours.
        let callStarted = 0;
        const timed = () => {
          callStarted = performance.now();
          started ??= callStarted;
          return call();
        };
        outcome = await (ctx.limits ? ctx.limits.run(url, timed, ctx.signal) : timed());
        // Long-running tasks are polled for minutes: their duration says nothing of the agent's load.
        if (!route.longRunning) sample = limitSample(outcome, performance.now() - callStarted);
      } finally {
        adaptive?.release(sample);
      }
    } catch (error) {
      handOn();
      if (!ctx.signal?.aborted) throw error;
      // Stopped while waiting for the agent's limits: the next run handles the message.
      job.abandoned = true;
      return job;
    }
    if ("reply" in outcome) {
      circuit.succeeded();
      refusal.succeeded();
      job.reply = { ...outcome.reply, attempts: attempt, latencyMs: Math.round(performance.now() - started!), url };
      return job;
    }
    const problem = outcome.failure;
    if (ctx.signal?.aborted) {
      // Shutting down: the call was cut short, so leave the message for the next run.
      job.abandoned = true;
      return job;
    }
    if (problem.class === "refused" && ctx.refusalFor) {
      // The agent refuses the caller, not this message: wait with every other call to it, spending
      // no retry, until a probe is accepted (see Circuit). Its host answered: it is up.
      circuit.succeeded();
      refusal.refused(asked, problem.message);
      continue;
    }
    if (problem.class !== "transient") {
      refusal.succeeded();
      circuit.succeeded(); // the agent answered: it is up, it just refused this message
      job.failure = { ...problem, attempts: attempt };
      return job;
    }
    circuit.failed(role);
    // A probe of a refusing agent that met an outage instead says nothing yet: probe again later.
    if (asked === "probe") refusal.failed("probe");
    const spent = attempt > retries.max;
    if (spent && ctx.circuitFor && (role === "probe" || circuit.successes === successesBefore)) {
      // Nobody got an answer while this message spent its retries: is the agent down, or is it this
      // message? An agent whose card answers is up, so the message ends here.
      if (await ctx.cards?.answers(url, token)) {
        if (role === "probe") circuit.succeeded();
        job.failure = failure(
          "invoke",
          "exhausted",
          `${problem.message} (after ${attempt} attempts; the agent is up)`,
          {
            attempts: attempt,
          },
        );
        return job;
      }
      circuit.trip();
    }
    // While the agent is down, waiting for it is not this message's fault: no retry is spent.
    if (circuit.open) continue;
    if (spent) {
      job.failure = failure("invoke", "exhausted", `${problem.message} (after ${attempt} attempts)`, {
        attempts: attempt,
      });
      return job;
    }
    // Retry-After is honoured up to max_backoff: a slot (and the key behind it) is never held longer.
    const retryAfter = Math.min(problem.retryAfterMs ?? 0, retries.maxBackoffMs);
    const delay = Math.max(backoffDelay(attempt, retries, ctx.random ?? Math.random), retryAfter);
    attempt++;
    await sleep(delay, ctx.signal);
  }
}

/**
 * Records a running task; if that fails the task is still polled, but a stop before it ends means
 * the message is sent to the agent again by the next run (as without a registry).
 */
async function rememberTask(tasks: TaskRegistry, key: string, task: RunningTask): Promise<void> {
  try {
    await tasks.remember(key, task);
  } catch (error) {
    log.warn("could not record task {taskId}: {error}", { taskId: task.taskId, error: errorMessage(error) });
  }
}

/** When a call counts as slow: four times the usual, at least 250 ms; unknown until calls were made. */
export function slowAfter(median: number | undefined): number | undefined {
  return median === undefined ? undefined : Math.max(250, 4 * median);
}

/** The invoke stage. */
export function invoke(jobs: AsyncIterable<Job>, ctx: InvokeContext): AsyncIterable<Job> {
  const lanes = new Map<string, { queue: KeyedQueue; latency: LatencyWindow }>();
  const laneFor = (pipeline: Pipeline) => {
    let lane = lanes.get(pipeline.name);
    if (!lane) {
      lane = { queue: new KeyedQueue(pipeline.delivery.maxConcurrency), latency: new LatencyWindow() };
      lanes.set(pipeline.name, lane);
    }
    return lane;
  };
  return mapUnordered(jobs, (job) => {
    if (!isLive(job)) return Promise.resolve(job);
    const { queue, latency } = laneFor(job.pipeline);
    return queue.add(orderingKey(job), () =>
      guarded("invoke", job, async () => {
        if (job.ack.stale) {
          job.abandoned = true;
          return job;
        }
        const done = await invokeJob(job, ctx);
        if (done.reply) latency.record(done.reply.latencyMs);
        return done;
        // With `auto`, a call waiting for the agent's limit is not slow, and a slow one holds the
        // agent's slot anyway: only a fixed cap lets slow calls give their slot back.
      }), job.pipeline.delivery.concurrency === "auto" ? undefined : slowAfter(latency.median()));
  });
}
