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
 * import { transform } from "./transform.ts";
 * import { match } from "./match.ts";
 * import { decode } from "./decode.ts";
 * import { contextFor } from "../dispatch.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * import { parsePipelineText } from "../config/load_pipelines.ts";
 * import { startDemoAgent } from "../agent/demo_agent.ts";
 * const agent = startDemoAgent({ port: 0 }); // an A2A agent, served the way Archestra serves its prompts
 * const yaml = "name: p\nsource: {topics: [t]}\n" +
 *   "routes: [{name: r, transform: {template: 'Order {id}'}, invoke: {prompt_id: x}}]\n";
 * const [p] = parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const value = new TextEncoder().encode('{"id":"A-1"}');
 * const record = { topic: "t", partition: 0, offset: "0", key: null, value, headers: {}, timestamp: "0" };
 * const jobs = ReadableStream.from([{ record, ctx: contextFor(p, record), pipeline: p, ack: unledgered }]);
 * const [job] = await Array.fromAsync(invoke(transform(match(decode(jobs))), { archestraUrl: agent.url }));
 * if (job.reply?.text !== "Demo agent [x] received 9 characters. First line: Order A-1") throw new Error(job.failure?.message);
 * await agent.close();
 * ```
 */
import { Buffer } from "node:buffer";
import { getLogger } from "@logtape/logtape";
import { errorMessage, failure } from "../errors.ts";
import type { RunningTask, TaskRegistry } from "../a2a/task_registry.ts";
import { Conversations, type Talk } from "../a2a/conversations.ts";
import type { AskingTasks } from "../a2a/asking_tasks.ts";
import { topicName } from "../answer_topics.ts";
import { type AgentReply, isLive, type Job, jobAgent, orderingKey, type Pipeline, type WaitingTask } from "../model.ts";
import { Circuit } from "../circuit.ts";
import { type CallGate, releasePass } from "../delivery/call_gate.ts";
import type { AgentCards } from "../a2a/agent_cards.ts";
import type { AgentLimits } from "../a2a/agent_limits.ts";
import type { AgentConcurrency } from "../a2a/agent_concurrency.ts";
import type { AdaptiveLimit, LimitSample } from "../a2a/adaptive_limit.ts";
import { sendMessage } from "../a2a/send_message.ts";
import type { OutgoingMessage } from "../a2a/dialect.ts";
import { agentEndpoint, type Archestra } from "../a2a/endpoint.ts";
import { abortableDelay } from "../util/abortable_delay.ts";
import { agentCallTraceparent, withJobSpan } from "../ops/tracing.ts";
import { mapUnordered } from "../util/concurrent.ts";
import { KeyedQueue } from "../util/keyed_queue.ts";
import { LatencyWindow } from "../util/latency_window.ts";
import { nameBasedUuid } from "../util/uuid.ts";
import { guarded } from "./stage.ts";

const log = getLogger(["agentstream", "invoke"]);

export interface InvokeContext extends Archestra {
  /** Cancels calls at the end of a stop's grace period; the jobs cut short are marked `abandoned`. */
  readonly signal?: AbortSignal;
  /**
   * Fires when a stop begins: every wait ends (for a circuit, a slot, a retry) and no new call is
   * made; calls already made run on until `signal`. By default `signal`.
   */
  readonly stopping?: AbortSignal;
  /**
   * The circuit of one agent endpoint, which opens while the agent fails every call or refuses the
   * caller (a token or agent id it does not accept); by default none: it never opens, and a
   * refusal fails the job as `refused`.
   */
  readonly circuitFor?: (url: string) => Circuit;
  /** The circuit of an agent's host, which opens while several of its agents cannot be reached; by default none. */
  readonly hostCircuitFor?: (url: string) => Circuit;
  /** Agent cards: whether an agent streams, its A2A version, and whether it is up. */
  readonly cards?: AgentCards;
  /** Limits on agents, shared by every pipeline (calls wait here until their agent allows them). */
  readonly limits?: AgentLimits;
  /** Adaptive limits per agent endpoint, for pipelines with `delivery.concurrency: auto`; by default none. */
  readonly concurrency?: AgentConcurrency;
  /** Where tasks the agent is still working on are recorded, to be resumed after a restart. */
  readonly tasks?: TaskRegistry;
  /** The conversations of keys (`invoke.context: key`); by default one kept in memory. */
  readonly conversations?: Conversations;
  /** Where tasks that asked wait for their answers; without it such a task fails as its state. */
  readonly asking?: AskingTasks;
  /**
   * Closed while the consumer subscribes again: no new call starts, and a call made holds a pass
   * (`job.callPass`) until its outcome is settled; by default none.
   */
  readonly gate?: CallGate;
  /** For tests: waits between retries. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** For tests: jitter source in [0, 1). */
  readonly random?: () => number;
}

/** The A2A message for a job, with a message id that is stable across redeliveries. */
export function buildMessage(job: Job, contextId?: string): OutgoingMessage {
  const { ctx } = job;
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
 * The message that answers a task that asked: into the task and its conversation, with the
 * decisions in `metadata.taskOps.approvalDecisions` (Archestra) or the text as its part.
 */
export function answerMessage(job: Job): OutgoingMessage {
  const { waiting, approvals, text } = job.answer!;
  const base = buildMessage(job, waiting!.contextId ?? undefined);
  return {
    ...base,
    taskId: waiting!.taskId,
    text: approvals ? undefined : text ?? "",
    metadata: approvals ? { ...base.metadata, taskOps: { approvalDecisions: approvals } } : base.metadata,
  };
}

function withoutContext({ contextId: _, ...message }: OutgoingMessage): OutgoingMessage {
  return message;
}

/** The conversation a job's message belongs to: its key's, with `invoke.context: key`; else none. */
export function talkOf(job: Job, url: string): Talk | undefined {
  const key = job.record.key;
  return job.route?.context === "key" && key !== null ? { pipeline: job.ctx.pipeline, key, url } : undefined;
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
const inMemory = new Conversations();

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

/** The most times a message the agent has already seen is sent again under a new id. */
export const MAX_RESENDS = 10;

/**
 * The id under which a message is sent again when the agent has already seen its id (a redelivery
 * after a crash, to Archestra's `/v2`): derived from the original id and how many times it was sent
 * again, so a second crash meets the same ids again, in the same order.
 *
 * @example
 * ```ts
 * import { resentMessageId } from "./invoke.ts";
 * const id = "2c8b4f0a-1f1e-8c3d-9a7b-5e6f7a8b9c0d";
 * if (resentMessageId(id, 1) !== resentMessageId(id, 1) || resentMessageId(id, 1) === resentMessageId(id, 2)) {
 *   throw new Error("stable, and new for each resend");
 * }
 * ```
 */
export function resentMessageId(messageId: string, resend: number): string {
  return nameBasedUuid(`resent\n${resend}\n`, messageId);
}

/**
 * Calls the agent for one live job, retrying as its pipeline allows; fills `reply` or `failure`.
 *
 * Every call passes the host's circuit, then the agent's (see {@link AgentCircuits}), then the
 * adaptive limit and the agent's limits. While a circuit is open only its probe goes out: a call
 * that got its slot after the circuit opened goes back to wait with the others, so a burst of first
 * calls queued for slots cannot keep the probe (ideally a retry) from being made.
 */
export async function invokeJob(job: Job, ctx: InvokeContext): Promise<Job> {
  // The job's own signals: its waits and calls end too when it goes stale (its partition revoked).
  const scope = jobScope(ctx, job.ack.signal);
  try {
    return await invokeInScope(job, scope.ctx);
  } finally {
    scope.dispose();
  }
}

/**
 * `ctx` with a job's stale signal added to its own: `stopping` (waits end) and `signal` (calls end)
 * fire at a stop, at the end of the grace period, or when the job goes stale, whichever comes first.
 * Listeners, not AbortSignal.any: the bridge's signals live long, and each job's are removed after.
 */
function jobScope(ctx: InvokeContext, stale: AbortSignal): { ctx: InvokeContext; dispose: () => void } {
  const stopping = new AbortController();
  const signal = new AbortController();
  const links: (() => void)[] = [];
  const link = (source: AbortSignal | undefined, target: AbortController) => {
    if (!source) return;
    const end = () => target.abort();
    if (source.aborted) end();
    else {
      source.addEventListener("abort", end, { once: true });
      links.push(() => source.removeEventListener("abort", end));
    }
  };
  link(ctx.stopping ?? ctx.signal, stopping);
  link(stale, stopping);
  link(ctx.signal, signal);
  link(stale, signal);
  return {
    ctx: { ...ctx, stopping: stopping.signal, signal: signal.signal },
    dispose: () => links.forEach((f) => f()),
  };
}

async function invokeInScope(job: Job, ctx: InvokeContext): Promise<Job> {
  const route = job.route!;
  const endpoint = agentEndpoint(jobAgent(job)!, ctx);
  const { url, token } = endpoint;
  const retries = job.pipeline.delivery.retries;
  const sleep = ctx.sleep ?? abortableDelay;
  const host = ctx.hostCircuitFor?.(url) ?? noCircuit;
  const agent = ctx.circuitFor?.(url) ?? noCircuit;
  const adaptive = adaptiveLimit(job, url, ctx);
  // Waiting (for a circuit, a slot, a retry) ends at a stop; a call already made may finish.
  const waits = ctx.stopping ?? ctx.signal;
  const stopped = () => waits?.aborted || ctx.signal?.aborted;
  const conversations = ctx.conversations ?? inMemory;
  // An answer goes into the task that asked (see answers.ts); nothing else is sent for it.
  const answer = job.answer?.waiting ? job.answer : undefined;
  const talk = answer ? undefined : talkOf(job, url);
  let original = answer ? answerMessage(job) : buildMessage(job, talk && conversations.contextFor(talk));
  let message = original;
  let resent = 0;
  const taskKey = job.ctx.messageId;
  const stream = route.stream && ctx.cards !== undefined && await ctx.cards.streams(url, token);
  // From the first call made: waiting for a circuit or a concurrency slot is ours, not the agent's.
  let started: number | undefined;
  const successesBefore = agent.successes;
  const abandon = () => {
    job.abandoned = true;
    return job;
  };
  // The agent answered (a reply, or an error it made on purpose): it and its host are up.
  const answered = () => {
    host.succeeded();
    agent.succeeded();
  };
  for (let attempt = 1;;) {
    // A pass is held from a call until its outcome: a retry waits without one.
    releasePass(job);
    // Past the host's circuit first, then the agent's. A message that failed before is the better
    // probe of its agent; the host's is best made by one whose own agent's circuit is closed.
    const retry = attempt > 1;
    const hostRole = await host.acquire(waits, { retry, ready: () => !agent.open });
    const role = await agent.acquire(waits, { retry });
    const probing = hostRole === "probe" || role === "probe";
    // A call that will not be made hands its probe on: a probe never made would keep a circuit shut.
    const skip = () => {
      host.skipped(hostRole);
      agent.skipped(role);
    };
    // Shutting down, or the assignment changed (Kafka delivers the message again): no more calls.
    if (stopped() || job.ack.stale) {
      skip();
      return abandon();
    }
    let outcome: Awaited<ReturnType<typeof sendMessage>>;
    try {
      // Read each attempt: a card that could not be fetched at first may be there now.
      const version = route.a2a ?? endpoint.version ?? await ctx.cards?.version(url, token) ?? "0.3";
      // A task the agent already works on for this message (from an earlier run or attempt) is
      // polled, not started again.
      const running = answer ? undefined : ctx.tasks?.get(taskKey);
      const resumeTaskId = running?.url === url ? running.taskId : undefined;
      const sent = message;
      const call = () =>
        withJobSpan(job, () =>
          sendMessage({
            url,
            token,
            version,
            message: sent,
            timeoutMs: route.timeoutMs,
            longRunning: route.longRunning,
            signal: ctx.signal,
            traceparent: agentCallTraceparent(job),
            resumeTaskId,
            stream: stream && !answer,
            onTask: ctx.tasks && !answer ? (taskId) => rememberTask(ctx.tasks!, taskKey, { taskId, url }) : undefined,
            answer: answer && answerRequest(job, ctx),
          }));
      await adaptive?.acquire(waits, { retry });
      let sample: LimitSample | undefined;
      try {
        // The assignment may have changed, or a stop begun, while the call waited for its slot.
        if (job.ack.stale || stopped()) {
          skip();
          return abandon();
        }
        // A circuit that opened meanwhile holds this call back with the others.
        if ((hostRole === "call" && host.open) || (role === "call" && agent.open)) {
          skip();
          continue;
        }
        // Timed from when the call goes out: waiting for a slot or for agent_limits is ours.
        let callStarted = 0;
        const timed = async () => {
          // While the consumer subscribes again, no call starts (a long-running task is resumed
          // from the task registry when its message comes again: it need not be waited for).
          if (ctx.gate && !route.longRunning) job.callPass ??= await ctx.gate.enter(waits);
          // A stop began while the call waited for the agent's limits or the gate: it is not made.
          if (stopped()) throw new Error("stopping");
          callStarted = performance.now();
          started ??= callStarted;
          return call();
        };
        outcome = await (ctx.limits
          ? throughLimits(ctx.limits, url, timed, {
            retry,
            waits,
            signal: ctx.signal,
            running: () => callStarted > 0,
          })
          : timed());
        // Long-running tasks are polled for minutes: their duration says nothing of the agent's load.
        if (!route.longRunning && !("skipped" in outcome)) {
          sample = limitSample(outcome, performance.now() - callStarted);
        }
      } finally {
        adaptive?.release(sample);
      }
    } catch (error) {
      skip();
      if (!stopped()) throw error;
      // Stopped while waiting for the agent's limits: the next run handles the message.
      return abandon();
    }
    if ("reply" in outcome) {
      answered();
      if (talk) await conversations.replied(talk, outcome.reply.contextId);
      const reply: AgentReply = {
        ...outcome.reply,
        attempts: attempt,
        latencyMs: Math.round(performance.now() - started!),
        url,
        ...(resent ? { resent } : {}),
      };
      if (reply.state === "completed") job.reply = reply;
      else await asked(job, reply, ctx);
      return job;
    }
    if ("skipped" in outcome) {
      // An answer that comes late (the task was answered, or timed out, already): nothing to do.
      answered();
      log.debug("{reason}: answer skipped", { reason: outcome.skipped });
      job.skipped = true;
      return job;
    }
    const problem = outcome.failure;
    // Cut short (the end of the grace period, or the job went stale): whoever handles the message
    // next makes the call. A probe cut short is no answer: it is handed on, or the circuit would
    // wait for it for ever.
    if (ctx.signal?.aborted) {
      skip();
      return abandon();
    }
    if (problem.class === "seen") {
      // The agent has answered this id before (the message is delivered again after a crash) and
      // keeps no answer to give back: the message goes again as a new one, spending no retry.
      answered();
      if (resent === MAX_RESENDS) {
        const why = `${problem.message} (and for each of ${MAX_RESENDS} new ids)`;
        job.failure = failure("invoke", "permanent", why, { attempts: attempt });
        return job;
      }
      resent++;
      message = { ...original, messageId: resentMessageId(original.messageId, resent) };
      continue;
    }
    if (problem.class === "context-lost" && talk && message.contextId) {
      // The agent no longer knows the key's conversation (expired or deleted), or accepts only ids
      // it minted: the key starts a new one, spending no retry.
      answered();
      conversations.lost(talk);
      log.info("the agent at {url} does not know the conversation of a key; starting a new one", { url });
      original = withoutContext(original);
      message = withoutContext(message);
      continue;
    }
    if (problem.class === "refused" && ctx.circuitFor) {
      // The agent refuses the caller, not this message: wait with every other call to it, spending
      // no retry, until a probe is accepted (see Circuit). Its host answered: it is up.
      host.succeeded();
      agent.refused(role, problem.message);
      continue;
    }
    if (problem.class !== "transient") {
      // The agent is up: it just refused this message.
      answered();
      const failureClass = problem.class === "context-lost" ? "permanent" : problem.class;
      job.failure = { ...problem, class: failureClass, attempts: attempt };
      return job;
    }
    // A first call's own failure (a rate limit passed on as -32603, an HTTP 429) is not evidence
    // of an outage; the same message failing again, or an agent that cannot be reached, is.
    const unreachable = problem.unreachable === true;
    agent.failed(role, { evidence: unreachable || retry || probing, unreachable });
    // Whatever the agent answered, its host answered: only an unreachable agent says the host is down.
    if (unreachable) host.failed(hostRole);
    else host.succeeded();
    const spent = attempt > retries.max;
    if (spent && ctx.circuitFor && (probing || agent.successes === successesBefore)) {
      // Nobody got an answer from this agent while this message spent its retries: is the agent
      // down, or is it this message? An agent whose card answers is up, so the message ends here.
      if (await ctx.cards?.answers(url, token)) {
        // Its circuit stays as it is: a card that answers is no call that succeeded, and closing it
        // would let every waiting message out to fail, and out of the card check.
        if (hostRole === "probe") host.succeeded();
        job.failure = failure(
          "invoke",
          "exhausted",
          `${problem.message} (after ${attempt} attempts; the agent is up)`,
          { attempts: attempt },
        );
        return job;
      }
      agent.trip();
    }
    // While the agent is down its callers wait; a probe is this message's retry, and spends one.
    if (host.open || agent.open) {
      if (probing && !spent) attempt++;
      continue;
    }
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
    // No call is in flight while it backs off: a resubscription need not wait for it.
    releasePass(job);
    await sleep(delay, waits);
  }
}

/**
 * The task stopped to ask (`input-required`, `auth-required`): where the route takes answers, the
 * task is kept as waiting (durably, before its question is published and its message committed,
 * so a waiting task holds no offset) and the reply is the question; elsewhere it fails as its state.
 */
async function asked(job: Job, reply: AgentReply, ctx: InvokeContext): Promise<void> {
  const route = job.route!;
  const state = reply.state as "input-required" | "auth-required";
  const before = job.answer?.waiting;
  if (!route.answers || !ctx.asking || !reply.taskId || !reply.question) {
    job.failure = failure(
      "invoke",
      state,
      `task ${reply.taskId} ended ${state}${reply.text ? `: ${reply.text}` : ""}`,
      {
        attempts: reply.attempts,
        ...(reply.taskId ? { taskId: reply.taskId } : {}),
      },
    );
    return;
  }
  const answersTopic = before?.answersTopic ?? topicName(route.answers.topic, job.ctx.topic, job.pipeline.name)!;
  const deadline = new Date(Date.now() + route.answers.timeoutMs).toISOString();
  const agent = jobAgent(job)!;
  const waiting: WaitingTask = {
    taskId: reply.taskId,
    contextId: reply.contextId ?? before?.contextId ?? null,
    url: reply.url,
    agent: agent.url !== undefined ? { url: agent.url } : { promptId: agent.promptId },
    route: route.name,
    source: before?.source ?? job.ctx,
    // The answer that led to this question, and those before it, are handled.
    ...(job.answer ? { askedAfter: { partition: job.record.partition, offset: job.record.offset } } : {}),
    original: before?.original ?? originalOf(job),
    question: reply.question,
    ...(reply.approvalRequests ? { approvalIds: approvalIdsOf(reply.approvalRequests) } : {}),
    answersTopic,
    deadline,
  };
  await ctx.asking.remember(waiting);
  // A redelivered message resumes this task (polls it) instead of starting another.
  if (!job.answer && ctx.tasks) {
    await rememberTask(ctx.tasks, job.ctx.messageId, { taskId: reply.taskId, url: reply.url });
  }
  job.reply = { ...reply, answerTo: { topic: answersTopic, key: reply.taskId, question: reply.question, deadline } };
}

/** A value this large is not kept with a waiting task: its DLQ record then carries the answer's bytes. */
const MAX_KEPT_VALUE = 256 * 1024;

/** The key and value of a task's message, kept with the task while it waits. */
function originalOf(job: Job): WaitingTask["original"] {
  const { key, value } = job.record;
  const size = value?.length ?? 0;
  return {
    key: key === null ? null : Buffer.from(key).toString("base64"),
    value: value === null || size > MAX_KEPT_VALUE ? null : Buffer.from(value).toString("base64"),
    size,
  };
}

/**
 * How an answer goes into its task: whether this very record was sent into it before (a redelivery
 * after a crash), and the durable note that it is being sent, made just before it is.
 */
function answerRequest(job: Job, ctx: InvokeContext): NonNullable<Parameters<typeof sendMessage>[0]["answer"]> {
  const answer = job.answer!;
  const waiting = answer.waiting!;
  const position = { partition: job.record.partition, offset: job.record.offset };
  return {
    taskId: waiting.taskId,
    question: waiting.question,
    cancel: answer.timeout,
    sent: waiting.answeredBy?.partition === position.partition && waiting.answeredBy.offset === position.offset,
    beforeSend: ctx.asking ? () => ctx.asking!.remember({ ...waiting, answeredBy: position }) : undefined,
  };
}

/** The ids of the approvals a task waits on that are not decided yet. */
function approvalIdsOf(requests: readonly unknown[]): string[] {
  return requests.flatMap((request) => {
    const { approvalId, resolved } = (request ?? {}) as { approvalId?: unknown; resolved?: unknown };
    return typeof approvalId === "string" && resolved !== true ? [approvalId] : [];
  });
}

/**
 * Runs a call through the agent's limits (p-queue). Its wait ends when `waits` aborts (a stop);
 * p-queue's signal would also end the call once under way, so it aborts then only while the call
 * has not started, and at the end of the grace period (`signal`) as every call does.
 */
async function throughLimits<T>(
  limits: AgentLimits,
  url: string,
  run: () => Promise<T>,
  options: { retry: boolean; waits?: AbortSignal; signal?: AbortSignal; running: () => boolean },
): Promise<T> {
  const { waits, signal, running, retry } = options;
  const queued = new AbortController();
  const stop = () => running() || queued.abort();
  const end = () => queued.abort();
  waits?.addEventListener("abort", stop);
  signal?.addEventListener("abort", end);
  if (waits?.aborted || signal?.aborted) queued.abort();
  try {
    return await limits.run(url, run, queued.signal, { retry });
  } finally {
    waits?.removeEventListener("abort", stop);
    signal?.removeEventListener("abort", end);
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
