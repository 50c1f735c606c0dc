/**
 * The demo agent as Archestra's `/v2/a2a/{id}` answers (A2A 1.0; see ../shared/ARCHESTRA.md and
 * what ../shared/archestra-real showed): every error at HTTP 200 as a JSON-RPC error, with
 * Archestra's own codes and words; a message id it has answered before is refused, one whose run
 * failed may be sent again; a reply's `contextId` is minted by the agent, and only contexts it
 * minted are accepted. The answer itself (message or task) comes from the SDK's 1.0 server. Written
 * from the observed wire format; no Archestra code.
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
  params?: { message?: { messageId?: unknown; contextId?: unknown } };
}

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
