/**
 * The demo agent as Archestra's `/v2/a2a/{id}` answers (A2A 1.0; see ../shared/ARCHESTRA.md and
 * what ../shared/archestra-real showed): every error at HTTP 200 as a JSON-RPC error, with
 * Archestra's own codes and words; a message id it has answered before is refused, one whose run
 * failed may be sent again; a reply's `contextId` is minted by the agent, and only contexts it
 * minted are accepted; a message to a finished task is `-32004`. A task that asks is a tool approval
 * (`metadata.approvalRequests`), answered with `metadata.taskOps.approvalDecisions` and no parts; a
 * finished task's answer is the artifact `agent-response`. The answer itself (message or task) comes
 * from the SDK's 1.0 server. Written from the observed wire format and Archestra's docs; no Archestra
 * code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ArchestraV2 } from "./archestra_v2.ts";
 * const v2 = new ArchestraV2();
 * const send = { id: 1, method: "SendMessage", params: { message: { messageId: "m-1", parts: [{ text: "hi" }] } } };
 * assert.equal(v2.refuse(send), undefined);
 * v2.answered(send, { jsonrpc: "2.0", id: 1, result: { message: { contextId: "c-1", parts: [] } } });
 * assert.equal(v2.refuse(send)?.error.message, "A message with the given ID already exists");
 * ```
 *
 * @module
 */
import { archestraError } from "./archestra_v1.ts";

interface RpcBody {
  id?: unknown;
  method?: unknown;
  params?: {
    message?: { messageId?: unknown; contextId?: unknown; taskId?: unknown; parts?: unknown; metadata?: unknown };
  };
}

/** A 1.0 task as the SDK answers it, as far as Archestra's dressing goes. */
interface TaskJson {
  id?: string;
  status?: { state?: string; message?: { messageId?: string } };
  artifacts?: { name?: string }[];
  metadata?: Record<string, unknown>;
}

const FINISHED = new Set(["TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"]);

/** The methods Archestra's `/v2` serves; anything else (0.3's `message/send` too) is `-32601`. */
const METHODS = new Set(["SendMessage", "SendStreamingMessage", "GetTask", "CancelTask"]);

/** Archestra's words for a caller it does not accept: no header, or a token that reaches no actor. */
export function archestraV2Refusal(id: unknown, authorization: string | null) {
  return authorization
    ? archestraError(id, -32602, "Failed to resolve actor from token")
    : archestraError(id, -32600, "Authorization header required. Use: Bearer <platform_token>");
}

/** An agent id Archestra does not know. */
export function archestraV2UnknownAgent(id: unknown) {
  return archestraError(id, -32006, "Agent not found");
}

/** A run that failed (the LLM provider's rate limit, after Archestra's own retries): `-32603` with `data.reason`. */
export function archestraV2RunFailed(id: unknown, reason: string) {
  return { jsonrpc: "2.0", id: id ?? null, error: { code: -32603, message: "Internal error", data: { reason } } };
}

/** What one agent's `/v2` remembers: the message ids it answered and the contexts it minted. */
export class ArchestraV2 {
  readonly #answered = new Set<string>();
  readonly #contexts = new Set<string>();
  /** The last state seen of each task, and the approval each question asks for. */
  readonly #states = new Map<string, string>();
  readonly #approvals = new Map<string, string>();

  /**
   * The call as the SDK takes it: approval decisions (no parts) become the text `approved` or
   * `denied`, since the demo's tasks ask in text.
   */
  incoming(body: RpcBody): RpcBody {
    const message = body.params?.message;
    const decisions = (message?.metadata as { taskOps?: { approvalDecisions?: unknown } } | undefined)?.taskOps
      ?.approvalDecisions;
    if (!message || !Array.isArray(decisions) || !decisions.length) return body;
    const approved = decisions.every((d) => (d as { approved?: unknown })?.approved === true);
    return {
      ...body,
      params: { ...body.params, message: { ...message, parts: [{ text: approved ? "approved" : "denied" }] } },
    };
  }

  /** The SDK's answer dressed as Archestra's: approvals on a task that asks, `agent-response` on an answer. */
  outgoing(reply: unknown): unknown {
    const result = (reply as { result?: { task?: TaskJson } } | null)?.result;
    const task = result?.task ?? (result as TaskJson | undefined);
    if (!task?.id || !task.status?.state) return reply;
    this.#states.set(task.id, task.status.state);
    if (task.status.state === "TASK_STATE_INPUT_REQUIRED") {
      const question = task.status.message?.messageId ?? task.id;
      let approvalId = this.#approvals.get(question);
      if (!approvalId) this.#approvals.set(question, approvalId = crypto.randomUUID());
      task.metadata = {
        ...task.metadata,
        approvalRequests: [{
          approvalId,
          toolCallId: `call-${approvalId}`,
          toolName: "refund",
          approved: false,
          resolved: false,
        }],
      };
    }
    for (const artifact of task.artifacts ?? []) artifact.name = "agent-response";
    return reply;
  }

  /** Archestra's refusal of a call whose caller and agent it accepts, or undefined to answer it. */
  refuse(body: RpcBody) {
    if (typeof body.method !== "string" || !METHODS.has(body.method)) {
      return archestraError(body.id, -32601, "Method not found");
    }
    const message = body.params?.message;
    if (!message || !body.method.endsWith("Message")) return undefined;
    if (typeof message.messageId === "string" && this.#answered.has(message.messageId)) {
      return archestraError(body.id, -32602, "A message with the given ID already exists");
    }
    if (typeof message.contextId === "string" && !this.#contexts.has(message.contextId)) {
      return archestraError(body.id, -32602, "Context not found");
    }
    if (typeof message.taskId === "string" && FINISHED.has(this.#states.get(message.taskId) ?? "")) {
      return archestraError(body.id, -32004, "Task is in a terminal state: send contextId without taskId");
    }
    return undefined;
  }

  /** Remembers what an answered send stored: its message id, and the context of its reply. */
  answered(body: RpcBody, reply: unknown): void {
    const result = (reply as { result?: Record<string, { contextId?: unknown }> } | null)?.result;
    if (!result) return;
    const messageId = body.params?.message?.messageId;
    if (typeof messageId === "string") this.#answered.add(messageId);
    const contextId = result.message?.contextId ?? result.task?.contextId;
    if (typeof contextId === "string") this.#contexts.add(contextId);
  }
}
