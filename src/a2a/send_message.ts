/**
 * One A2A `message/send` call over JSON-RPC 2.0, classified: a reply, or a {@link StageFailure}
 * that says whether a retry can help. A `Task` result that is not finished is polled with
 * `tasks/get` until it ends or the call's time runs out.
 *
 * @example
 * ```ts
 * import { sendMessage } from "./send_message.ts";
 * const outcome = await sendMessage({
 *   url: "http://localhost:9000/v1/a2a/my-prompt",
 *   token: undefined,
 *   message: { kind: "message", role: "user", messageId: "m-1", parts: [{ kind: "text", text: "hi" }] },
 *   timeoutMs: 30_000,
 * });
 * if ("reply" in outcome) console.log(outcome.reply.text);
 * ```
 */
import type { Message, Part, Task } from "@a2a-js/sdk";
import { errorMessage, failure, type StageFailure } from "../errors.ts";
import { redact } from "../secrets.ts";
import { eventData, foldEvent, type StreamEvent } from "./stream_events.ts";

/** What a successful call returns. */
export interface A2AReply {
  text: string;
  parts: Part[];
  taskId: string | null;
  contextId: string | null;
}

export interface SendMessageRequest {
  url: string;
  token: string | undefined;
  message: Message;
  timeoutMs: number;
  /** Cancels the call (on shutdown); counts as a transient failure. */
  signal?: AbortSignal;
  /** W3C trace context to send on (`traceparent` header). */
  traceparent?: string;
  /** Use `message/stream` (the agent's card says it streams, and the route asks for it). */
  stream?: boolean;
  /** A task the agent already works on for this message: poll it instead of sending the message. */
  resumeTaskId?: string;
  /**
   * Called when the agent answers with a task that is not finished, before it is polled: the
   * caller makes the task id durable, so a bridge that stops now resumes the task instead of
   * sending the message again.
   */
  onTask?: (taskId: string) => Promise<void>;
}

const TERMINAL_FAILURES = new Set(["failed", "canceled", "rejected"]);
const NEEDS_INPUT = new Set(["input-required", "auth-required"]);

/** Sends one message; never throws for anything the agent or the network does. */
export async function sendMessage(
  original: SendMessageRequest,
): Promise<{ reply: A2AReply } | { failure: StageFailure }> {
  // A task is recorded once, whether a stream or the answer announces it.
  let recorded = false;
  const onTask = original.onTask;
  const request: SendMessageRequest = {
    ...original,
    onTask: onTask && ((taskId) => recorded ? Promise.resolve() : (recorded = true, onTask(taskId))),
  };
  const deadline = Date.now() + request.timeoutMs;
  let first = request.resumeTaskId
    ? await rpc(request, deadline, "tasks/get", { id: request.resumeTaskId })
    : undefined;
  // An agent that no longer knows the task (it restarted, or expired it) gets the message again.
  const resumed = first !== undefined && !("failure" in first && first.failure.class === "permanent");
  if (!resumed) {
    first = await rpc(request, deadline, request.stream ? "message/stream" : "message/send", {
      message: request.message,
      configuration: { blocking: true, acceptedOutputModes: ["text/plain", "application/json"] },
    });
  }
  if ("failure" in first!) return first;
  try {
    const result = first!.result as Message | Task;
    if (!resumed && result?.kind === "task" && !isFinal(result)) await request.onTask?.(result.id);
    return await settle(request, deadline, result);
  } catch (error) {
    // An answer of the wrong shape is the agent's bug; retrying the same message will not fix it.
    return { failure: failure("invoke", "permanent", `agent answered with an unreadable result: ${error}`) };
  }
}

async function settle(
  request: SendMessageRequest,
  deadline: number,
  initial: Message | Task,
): Promise<{ reply: A2AReply } | { failure: StageFailure }> {
  let result = initial;
  for (let pause = 250; result?.kind === "task" && !isFinal(result); pause = Math.min(pause * 2, 5_000)) {
    if (Date.now() + pause >= deadline) {
      return {
        failure: failure(
          "invoke",
          "transient",
          `task ${result.id} still ${result.status.state} after ${request.timeoutMs} ms`,
        ),
      };
    }
    await pauseUnlessAborted(pause, request.signal);
    const polled = await rpc(request, deadline, "tasks/get", { id: result.id });
    // A failed poll says nothing final about the task: retried, the next attempt polls it again
    // (or, if the agent has lost it, sends the message anew).
    if ("failure" in polled) {
      return { failure: failure("invoke", "transient", `polling task ${result.id}: ${polled.failure.message}`) };
    }
    result = polled.result as Task;
  }
  return readResult(result);
}

/** Waits `ms`, or less when `signal` aborts (a stop does not wait for the next poll). */
function pauseUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

function isFinal(task: Task): boolean {
  if (!task.status) throw new TypeError("task has no status");
  const state = task.status.state;
  return state === "completed" || TERMINAL_FAILURES.has(state) || NEEDS_INPUT.has(state);
}

function textOf(parts: readonly Part[] | undefined): string {
  if (parts !== undefined && !Array.isArray(parts)) throw new TypeError("parts is not a list");
  return (parts ?? []).flatMap((part) => part?.kind === "text" ? [String(part.text)] : []).join("\n");
}

function readResult(result: Message | Task | undefined): { reply: A2AReply } | { failure: StageFailure } {
  if (result?.kind === "message") {
    return {
      reply: {
        text: textOf(result.parts),
        parts: result.parts,
        taskId: result.taskId ?? null,
        contextId: result.contextId ?? null,
      },
    };
  }
  if (result?.kind === "task") {
    if (!result.status) throw new TypeError("task has no status");
    const state = result.status.state;
    const statusText = textOf(result.status.message?.parts);
    if (state !== "completed") {
      // A task waiting for input or authorisation has its own class: someone has to act on it.
      const failureClass = state === "input-required" || state === "auth-required" ? state : "permanent";
      return {
        failure: failure(
          "invoke",
          failureClass,
          `task ${result.id} ended ${state}${statusText ? `: ${statusText}` : ""}`,
          { taskId: result.id },
        ),
      };
    }
    const parts = (result.artifacts ?? []).flatMap((artifact) => artifact.parts);
    const replyParts = parts.length ? parts : result.status.message?.parts ?? [];
    return {
      reply: { text: textOf(replyParts), parts: replyParts, taskId: result.id, contextId: result.contextId ?? null },
    };
  }
  return { failure: failure("invoke", "permanent", "agent result is neither a Message nor a Task") };
}

/**
 * One JSON-RPC call, cut off at `deadline` or when `request.signal` aborts. The timer and the
 * listener are removed as soon as the call ends: `AbortSignal.timeout` would keep every call's
 * signal alive for the whole timeout, and `AbortSignal.any` on the long-lived shutdown signal would
 * keep one more signal per call, so memory would grow with the number of messages.
 */
async function rpc(
  request: SendMessageRequest,
  deadline: number,
  method: string,
  params: unknown,
): Promise<{ result: unknown } | { failure: StageFailure }> {
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
): Promise<{ result: unknown } | { failure: StageFailure }> {
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: method === "message/stream" ? "text/event-stream" : "application/json",
        ...(request.token ? { authorization: `Bearer ${request.token}` } : {}),
        ...(request.traceparent ? { traceparent: request.traceparent } : {}),
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: crypto.randomUUID(), method, params }),
      signal,
    });
  } catch (error) {
    const reason = timeout.aborted
      ? `no answer within ${request.timeoutMs} ms`
      : signal.aborted
      ? "call cancelled"
      : `cannot reach the agent: ${(error as Error).message}`;
    return { failure: failure("invoke", "transient", reason) };
  }
  if (response.ok && (response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    return await readStream(request, response.body!, signal, timeout);
  }
  let body: string;
  try {
    body = await response.text();
  } catch (error) {
    const reason = timeout.aborted
      ? `no answer within ${request.timeoutMs} ms`
      : signal.aborted
      ? "call cancelled"
      : `answer cut off: ${(error as Error).message}`;
    return { failure: failure("invoke", "transient", reason) };
  }
  if (!response.ok) {
    const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
    const reason = `HTTP ${response.status} ${response.statusText}${body ? `: ${excerpt(body)}` : ""}`;
    return {
      failure: failure("invoke", retryable ? "transient" : "permanent", reason, {
        retryAfterMs: parseRetryAfter(response.headers.get("retry-after")),
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
  if (payload.error) {
    return {
      failure: failure(
        "invoke",
        "permanent",
        `JSON-RPC error ${payload.error.code ?? "?"}: ${payload.error.message ?? "no message"}`,
      ),
    };
  }
  return { result: payload.result };
}

/**
 * Reads a `message/stream` answer to its end (or its final event), folding the events into one
 * result. A task that is not finished yet is recorded (`onTask`) as soon as it shows up; a stream
 * that ends before the task does leaves the task to be polled.
 */
async function readStream(
  request: SendMessageRequest,
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  timeout: { aborted: boolean },
): Promise<{ result: unknown } | { failure: StageFailure }> {
  let result: Message | Task | undefined;
  try {
    for await (const data of eventData(body)) {
      let payload: { result?: StreamEvent; error?: { code?: number; message?: string } };
      try {
        payload = JSON.parse(data);
      } catch {
        return { failure: failure("invoke", "permanent", `agent streamed invalid JSON: ${excerpt(data)}`) };
      }
      if (payload?.error) {
        const { code, message } = payload.error;
        return { failure: failure("invoke", "permanent", `JSON-RPC error ${code ?? "?"}: ${message ?? "no message"}`) };
      }
      if (!payload?.result || typeof payload.result !== "object") continue;
      let final: boolean;
      try {
        result = foldEvent(result, payload.result);
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
    return { failure: failure("invoke", "transient", reason) };
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
