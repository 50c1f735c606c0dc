/**
 * One A2A call over JSON-RPC 2.0 (`message/send` in 0.3, `SendMessage` in 1.0), classified: a
 * reply, or a {@link StageFailure} that says what to do about it. Answers are read by shape (see
 * `shapes.ts`), so Archestra's bare `/v1` Message, SDK 0.3 results and A2A 1.0 results all work.
 *
 * A task that is not finished is recorded (`onTask`) and polled (`tasks/get` / `GetTask`) until it
 * ends; one still running at the call's timeout is cancelled and fails as `timeout`. With
 * `longRunning`, the send does not block, so the task id arrives (and is recorded) at once.
 *
 * @example
 * ```ts
 * import { sendMessage } from "./send_message.ts";
 * const outcome = await sendMessage({
 *   url: "http://127.0.0.1:1/v1/a2a/my-agent", // nothing listens here
 *   token: undefined,
 *   version: "0.3",
 *   message: { messageId: "m-1", text: "hi", metadata: {} },
 *   timeoutMs: 1_000,
 * });
 * if ("failure" in outcome) console.log(outcome.failure.class); // "transient"
 * ```
 *
 * @module
 */
import { errorMessage, failure, type FailureClass, type StageFailure } from "../errors.ts";
import { redact } from "../secrets.ts";
import { type A2AVersion, type Dialect, dialect, type OutgoingMessage } from "./dialect.ts";
import { type Message, type Part, readResult, readStreamEvent, readTask, type Task, textOf } from "./shapes.ts";
import { eventData, foldEvent } from "./stream_events.ts";
import { abortableDelay } from "../util/abortable_delay.ts";
import { nameBasedUuid } from "../util/uuid.ts";

/** What a successful call returns. */
export interface A2AReply {
  text: string;
  parts: Part[];
  taskId: string | null;
  contextId: string | null;
  /** `completed`, or the task stopped to ask: the text and parts are its question. */
  state: "completed" | "input-required" | "auth-required";
  /** What the task waits to have approved (Archestra's `metadata.approvalRequests`), as given. */
  approvalRequests?: unknown[];
  /** For a question: what tells it from the task's next one (see {@link questionOf}). */
  question?: string;
}

export interface SendMessageRequest {
  url: string;
  token: string | undefined;
  /** The A2A version the agent speaks. */
  version: A2AVersion;
  message: OutgoingMessage;
  timeoutMs: number;
  /** Cancels the call (on shutdown); counts as a transient failure. */
  signal?: AbortSignal;
  /** W3C trace context to send on (`traceparent` header). */
  traceparent?: string;
  /** Stream the answer (the agent's card says it streams, and the route asks for it). */
  stream?: boolean;
  /** The agent answers with tasks that run long: send without blocking and poll. */
  longRunning?: boolean;
  /** A task the agent already works on for this message: poll it instead of sending the message. */
  resumeTaskId?: string;
  /**
   * Called when the agent answers with a task that is not finished, before it is polled: the
   * caller makes the task id durable, so a bridge that stops now resumes the task instead of
   * sending the message again.
   */
  onTask?: (taskId: string) => Promise<void>;
  /**
   * `message` answers a task that asked `question`. The task is asked for first. One that still
   * asks gets the answer (`beforeSend` first records that this answer is being sent) and is followed
   * to its end; with `cancel` (its wait has timed out) it is cancelled instead, and fails as
   * `input-required`. One that no longer asks (or asks anew) was moved on by this answer before
   * (`sent`: a redelivery after a crash), and is followed; else the answer comes late and is `skipped`.
   */
  answer?: {
    taskId: string;
    question: string;
    cancel?: boolean;
    /** This answer was recorded as sent into the task before. */
    sent?: boolean;
    beforeSend?: () => Promise<void>;
  };
}

/** What one call came to: a reply, a failure, or (an answer that came late) skipped. */
export type Outcome = { reply: A2AReply } | { failure: StageFailure } | { skipped: string };
type RpcOutcome = { result: unknown } | { failure: StageFailure };

const FAILED = new Set(["failed", "canceled", "rejected"]);
const NEEDS_INPUT = new Set(["input-required", "auth-required"]);
/** Time a cancel of a timed-out task may take, past the call's own timeout. */
const CANCEL_MS = 5_000;

/** Sends one message; never throws for anything the agent or the network does. */
export async function sendMessage(original: SendMessageRequest): Promise<Outcome> {
  // A task is recorded once, whether a stream or the answer announces it.
  let recorded = false;
  const onTask = original.onTask;
  const request: SendMessageRequest = {
    ...original,
    onTask: onTask && ((taskId) => recorded ? Promise.resolve() : (recorded = true, onTask(taskId))),
  };
  const speak = dialect(request.version);
  const deadline = Date.now() + request.timeoutMs;
  if (request.answer) return await answerTask(request, speak, deadline, request.answer);
  let first = request.resumeTaskId
    ? await rpc(request, deadline, speak.methods.get, speak.taskParams(request.resumeTaskId))
    : undefined;
  // An agent that no longer knows the task (it restarted, or expired it) gets the message again.
  const resumed = first !== undefined && !("failure" in first && first.failure.class === "permanent");
  if (!resumed) {
    const method = request.stream ? speak.methods.stream : speak.methods.send;
    first = await rpc(request, deadline, method, speak.sendParams(request.message, { blocking: !request.longRunning }));
  }
  if ("failure" in first!) return first;
  let result: Message | Task;
  try {
    result = readResult(first!.result);
  } catch (error) {
    // An answer of the wrong shape is the agent's bug; retrying the same message will not fix it.
    return { failure: failure("invoke", "permanent", errorMessage(error)) };
  }
  if (!resumed && result.kind === "task" && !isFinal(result)) await request.onTask?.(result.id);
  return await settle(request, speak, deadline, result);
}

/** Answers a task that asked (or cancels it at its timeout), then follows it to its end. */
async function answerTask(
  request: SendMessageRequest,
  speak: Dialect,
  deadline: number,
  answer: NonNullable<SendMessageRequest["answer"]>,
): Promise<Outcome> {
  const polled = await rpc(request, deadline, speak.methods.get, speak.taskParams(answer.taskId));
  if ("failure" in polled) {
    if (polled.failure.class !== "permanent") return polled;
    return {
      failure: failure(
        "invoke",
        "permanent",
        `task ${answer.taskId} is unknown to the agent: ${polled.failure.message}`,
        { taskId: answer.taskId },
      ),
    };
  }
  let task: Task;
  try {
    task = readTask(polled.result);
  } catch (error) {
    return { failure: failure("invoke", "permanent", errorMessage(error)) };
  }
  const asks = NEEDS_INPUT.has(task.status.state);
  if (!asks || (answer.sent && questionOf(task) !== answer.question)) {
    // This answer moved the task on before (a redelivery): follow it as it is now.
    if (answer.sent) return await settle(request, speak, deadline, task);
    return { skipped: `task ${task.id} no longer waits for an answer (${task.status.state})` };
  }
  if (answer.cancel) {
    const cancel = await rpc(request, Date.now() + CANCEL_MS, speak.methods.cancel, speak.taskParams(task.id));
    const cancelled = "failure" in cancel ? `; cancelling it failed: ${cancel.failure.message}` : "; cancelled";
    return {
      failure: failure(
        "invoke",
        task.status.state as FailureClass,
        `task ${task.id} got no answer in time${cancelled}`,
        {
          taskId: task.id,
        },
      ),
    };
  }
  await answer.beforeSend?.();
  const sent = await rpc(
    request,
    deadline,
    speak.methods.send,
    speak.sendParams(request.message, { blocking: !request.longRunning }),
  );
  if ("failure" in sent) return sent;
  let result: Message | Task;
  try {
    result = readResult(sent.result);
  } catch (error) {
    return { failure: failure("invoke", "permanent", errorMessage(error)) };
  }
  return await settle(request, speak, deadline, result);
}

/**
 * What tells one question of a task from its next: its state, the status message's id and text,
 * and the approvals it waits on. A task that asks again after an answer asks something else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { questionOf } from "./send_message.ts";
 * const ask = (text: string) => ({
 *   kind: "task" as const,
 *   id: "t",
 *   status: { state: "input-required" as const, message: { kind: "message" as const, role: "agent" as const, parts: [{ kind: "text" as const, text }] } },
 * });
 * assert.equal(questionOf(ask("Which size?")), questionOf(ask("Which size?")));
 * assert.notEqual(questionOf(ask("Which size?")), questionOf(ask("Which colour?")));
 * ```
 */
export function questionOf(task: Task): string {
  const approvals = approvalRequestsOf(task)?.map((request) => (request as { approvalId?: unknown })?.approvalId);
  return nameBasedUuid(
    "question\n",
    JSON.stringify([
      task.status.state,
      task.status.message?.messageId ?? "",
      textOf(task.status.message?.parts),
      approvals ?? [],
    ]),
  );
}

/** Archestra's `metadata.approvalRequests` of a task, as given. */
function approvalRequestsOf(task: Task): unknown[] | undefined {
  const requests = task.metadata?.approvalRequests;
  return Array.isArray(requests) ? requests : undefined;
}

async function settle(request: SendMessageRequest, speak: Dialect, deadline: number, initial: Message | Task) {
  let result = initial;
  for (let pause = 250; result.kind === "task" && !isFinal(result); pause = Math.min(pause * 2, 5_000)) {
    // Stopped (or the job went stale): the task is left as it is, never cancelled, for whoever
    // handles the message next to resume.
    if (request.signal?.aborted) return { failure: failure("invoke", "transient", "call cancelled") };
    if (Date.now() + pause >= deadline) return await timedOut(request, speak, result);
    await abortableDelay(pause, request.signal);
    const polled = await rpc(request, deadline, speak.methods.get, speak.taskParams(result.id));
    // A failed poll says nothing final about the task: retried, the next attempt polls it again
    // (or, if the agent has lost it, sends the message anew).
    if ("failure" in polled) {
      // A refusal is about the caller (waited out like any other), and a stop is a stop.
      if (request.signal?.aborted || polled.failure.class === "refused") return polled;
      return {
        failure: failure("invoke", "transient", `polling task ${result.id}: ${polled.failure.message}`, {
          overload: polled.failure.overload,
          unreachable: polled.failure.unreachable,
        }),
      };
    }
    try {
      result = readTask(polled.result);
    } catch (error) {
      return { failure: failure("invoke", "permanent", errorMessage(error)) };
    }
  }
  return readReply(result);
}

/**
 * A task still running at the timeout is cancelled (best effort) and fails as `timeout`: the agent
 * is working, not failing, and a retry would only start the same work again.
 */
async function timedOut(request: SendMessageRequest, speak: Dialect, task: Task): Promise<Outcome> {
  const cancel = await rpc(request, Date.now() + CANCEL_MS, speak.methods.cancel, speak.taskParams(task.id));
  const cancelled = "failure" in cancel ? `; cancelling it failed: ${cancel.failure.message}` : ", cancelled";
  return {
    failure: failure(
      "invoke",
      "timeout",
      `task ${task.id} still ${task.status.state} after ${request.timeoutMs} ms${cancelled}`,
      { taskId: task.id },
    ),
  };
}

function isFinal(task: Task): boolean {
  const state = task.status.state;
  return state === "completed" || FAILED.has(state) || NEEDS_INPUT.has(state);
}

function readReply(result: Message | Task): Outcome {
  if (result.kind === "message") {
    return {
      reply: {
        text: textOf(result.parts),
        parts: result.parts,
        taskId: result.taskId ?? null,
        contextId: result.contextId ?? null,
        state: "completed",
      },
    };
  }
  const state = result.status.state;
  if (state === "input-required" || state === "auth-required") {
    // Not a failure: the task waits for someone to answer its question (see src/stages/answers.ts).
    const question = result.status.message?.parts ?? [];
    const approvalRequests = approvalRequestsOf(result);
    return {
      reply: {
        text: textOf(question),
        parts: question,
        taskId: result.id,
        contextId: result.contextId ?? null,
        state,
        ...(approvalRequests ? { approvalRequests } : {}),
        question: questionOf(result),
      },
    };
  }
  if (state !== "completed") {
    const statusText = textOf(result.status.message?.parts);
    return {
      failure: failure(
        "invoke",
        "permanent",
        `task ${result.id} ended ${state}${statusText ? `: ${statusText}` : ""}`,
        { taskId: result.id },
      ),
    };
  }
  // Archestra's /v2 names its answer's artifact `agent-response`; other agents may send several.
  const artifacts = result.artifacts ?? [];
  const answer = artifacts.find((artifact) => artifact.name === "agent-response");
  const parts = (answer ? [answer] : artifacts).flatMap((artifact) => artifact.parts);
  const replyParts = parts.length ? parts : result.status.message?.parts ?? [];
  return {
    reply: {
      text: textOf(replyParts),
      parts: replyParts,
      taskId: result.id,
      contextId: result.contextId ?? null,
      state: "completed",
    },
  };
}

/**
 * What a JSON-RPC error means for the caller. Archestra answers every error at HTTP 200, so the
 * code is all there is: `-32603` is the run failing (usually the LLM provider's rate limit,
 * overload or timeout), worth retrying; a refused token, an unknown agent or method, or an
 * unsupported version is about the caller, not the message (`refused`); a message id the agent
 * has already answered (Archestra's `/v2` after a redelivery) is `seen`, a contextId it does not
 * know is `context-lost`; the rest is permanent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyRpcError } from "./send_message.ts";
 * // Archestra's /v2, as its router answers
 * assert.equal(classifyRpcError(-32602, "Failed to resolve actor from token"), "refused");
 * assert.equal(classifyRpcError(-32006, "Agent not found"), "refused");
 * assert.equal(classifyRpcError(-32602, "A message with the given ID already exists"), "seen");
 * assert.equal(classifyRpcError(-32602, "Context not found"), "context-lost");
 * ```
 */
export function classifyRpcError(code: number | undefined, message: string): FailureClass {
  switch (code) {
    case -32603:
      return "transient";
    case -32601: // method not found: the agent speaks another version, or is not an A2A agent
    case -32009: // A2A version not supported
    case -32006: // Archestra's /v2: agent not found
      return "refused";
    case -32600:
      return REFUSAL_TEXT.test(message) ? "refused" : "permanent";
    case -32602:
      if (/message with the given id already exists/i.test(message)) return "seen";
      if (/context not found/i.test(message)) return "context-lost";
      return REFUSAL_TEXT.test(message) || /agent.*not found|not an? .*agent|unknown agent/i.test(message)
        ? "refused"
        : "permanent";
    default:
      return "permanent";
  }
}

/** What an error about the caller's credentials says (Archestra `/v2`: "Failed to resolve actor from token"). */
const REFUSAL_TEXT = /auth|token|credential|forbidden|permission|resolve actor/i;

/** What an HTTP error status means: the caller refused (401, 403, 404), worth a retry, or permanent. */
export function classifyStatus(status: number): FailureClass {
  if (status === 401 || status === 403 || status === 404) return "refused";
  return status === 408 || status === 429 || status >= 500 ? "transient" : "permanent";
}

/**
 * What a `-32603` says when it is about capacity: Archestra passes on the LLM provider's rate limit,
 * overload or timeout this way, in the message or its `data`. Other `-32603`s (JSON-RPC's generic
 * internal error) are about the message, and must not shrink an adaptive limit.
 */
const OVERLOAD_TEXT =
  /rate.?limit|too many|\b429\b|\b5(03|29)\b|overload|capacity|quota|throttl|timed? ?out|timeout|busy|unavailable/i;

function rpcFailure(error: { code?: number; message?: string; data?: unknown }): StageFailure {
  const message = `JSON-RPC error ${error.code ?? "?"}: ${error.message ?? "no message"}`;
  let details = String(error.message ?? "");
  try {
    details += ` ${JSON.stringify(error.data ?? "")}`;
  } catch { /* data that cannot be written out says nothing */ }
  return failure("invoke", classifyRpcError(error.code, String(error.message ?? "")), message, {
    overload: error.code === -32603 && OVERLOAD_TEXT.test(details),
  });
}

/** HTTP statuses that say the agent (or what is in front of it) is at its capacity. */
const OVERLOAD_STATUSES = new Set([429, 503, 504]);

/**
 * One JSON-RPC call, cut off at `deadline` or when `request.signal` aborts. The timer and the
 * listener are removed as soon as the call ends: `AbortSignal.timeout` would keep every call's
 * signal alive for the whole timeout, and `AbortSignal.any` on the long-lived shutdown signal would
 * keep one more signal per call, so memory would grow with the number of messages.
 */
async function rpc(request: SendMessageRequest, deadline: number, method: string, params: unknown) {
  const controller = new AbortController();
  const timeout = { aborted: false };
  const timer = setTimeout(() => {
    timeout.aborted = true;
    controller.abort();
  }, Math.max(1, deadline - Date.now()));
  const cancel = () => controller.abort();
  request.signal?.addEventListener("abort", cancel, { once: true });
  if (request.signal?.aborted) controller.abort();
  try {
    return await call(request, method, params, controller.signal, timeout);
  } finally {
    clearTimeout(timer);
    request.signal?.removeEventListener("abort", cancel);
  }
}

async function call(
  request: SendMessageRequest,
  method: string,
  params: unknown,
  signal: AbortSignal,
  timeout: { aborted: boolean },
): Promise<RpcOutcome> {
  const cutShort = (what: string, error: unknown) =>
    timeout.aborted
      ? `no answer within ${request.timeoutMs} ms`
      : signal.aborted
      ? "call cancelled"
      : `${what}: ${errorMessage(error)}`;
  const speak = dialect(request.version);
  const streaming = method === speak.methods.stream;
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: streaming ? "text/event-stream" : "application/json",
        ...speak.headers,
        ...(request.token ? { authorization: `Bearer ${request.token}` } : {}),
        ...(request.traceparent ? { traceparent: request.traceparent } : {}),
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: crypto.randomUUID(), method, params }),
      signal,
    });
  } catch (error) {
    const reason = cutShort("cannot reach the agent", error);
    return { failure: failure("invoke", "transient", reason, { overload: timeout.aborted, unreachable: true }) };
  }
  if (response.ok && (response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    return await readStream(request, response.body!, signal, timeout);
  }
  let body: string;
  try {
    body = await response.text();
  } catch (error) {
    return {
      failure: failure("invoke", "transient", cutShort("answer cut off", error), {
        overload: timeout.aborted,
        unreachable: true,
      }),
    };
  }
  if (!response.ok) {
    const reason = `HTTP ${response.status} ${response.statusText}${body ? `: ${excerpt(body)}` : ""}`;
    return {
      failure: failure("invoke", classifyStatus(response.status), reason, {
        retryAfterMs: parseRetryAfter(response.headers.get("retry-after")),
        overload: OVERLOAD_STATUSES.has(response.status),
        unreachable: response.status >= 500,
      }),
    };
  }
  let payload: { result?: unknown; error?: { code?: number; message?: string } };
  try {
    payload = JSON.parse(body);
  } catch {
    return { failure: failure("invoke", "permanent", `agent answered with invalid JSON: ${excerpt(body)}`) };
  }
  if (payload === null || typeof payload !== "object") {
    return { failure: failure("invoke", "permanent", `agent answered with no JSON-RPC object: ${excerpt(body)}`) };
  }
  if (payload.error) return { failure: rpcFailure(payload.error) };
  return { result: payload.result };
}

/**
 * Reads a streamed answer to its end (or its final event), folding the events into one result. A
 * task that is not finished yet is recorded (`onTask`) as soon as it shows up; a stream that ends
 * before the task does leaves the task to be polled.
 */
async function readStream(
  request: SendMessageRequest,
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  timeout: { aborted: boolean },
): Promise<RpcOutcome> {
  let result: Message | Task | undefined;
  try {
    for await (const data of eventData(body)) {
      let payload: { result?: unknown; error?: { code?: number; message?: string } };
      try {
        payload = JSON.parse(data);
      } catch {
        return { failure: failure("invoke", "permanent", `agent streamed invalid JSON: ${excerpt(data)}`) };
      }
      if (payload?.error) return { failure: rpcFailure(payload.error) };
      if (!payload?.result || typeof payload.result !== "object") continue;
      let final: boolean;
      try {
        result = foldEvent(result, readStreamEvent(payload.result));
        final = result.kind === "message" || isFinal(result);
      } catch (error) {
        return {
          failure: failure("invoke", "permanent", `agent streamed an unreadable event: ${errorMessage(error)}`),
        };
      }
      if (final) break;
      await request.onTask?.((result as Task).id);
    }
  } catch (error) {
    const reason = timeout.aborted
      ? `no answer within ${request.timeoutMs} ms`
      : signal.aborted
      ? "call cancelled"
      : `stream cut off: ${errorMessage(error)}`;
    return { failure: failure("invoke", "transient", reason, { overload: timeout.aborted, unreachable: true }) };
  }
  if (!result) return { failure: failure("invoke", "permanent", "the agent's stream ended without a result") };
  return { result };
}

/** The start of what an agent sent, for a message: secrets blanked before it is cut, so no part of one stays. */
function excerpt(text: string): string {
  return redact(text).slice(0, 200);
}

/** `Retry-After` as seconds or an HTTP date, in milliseconds; `undefined` when absent or unreadable. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
