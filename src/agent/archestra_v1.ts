/**
 * The demo agent as Archestra's `/v1/a2a/{id}` answers (see ../shared/ARCHESTRA.md): every call is
 * a `message/send` whatever its method, the result is a bare `{messageId, role, parts}` with no
 * `kind`, errors come at HTTP 200 as JSON-RPC errors, and the card (no `protocolVersion`) is
 * behind the bearer token. No tasks, no streaming. Written from the observed wire format; no
 * Archestra code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { archestraV1Reply } from "./archestra_v1.ts";
 * const body = archestraV1Reply({ id: 7, params: { message: { parts: [{ kind: "text", text: "hi" }] } } }, "p", {});
 * assert.equal(body.id, 7);
 * assert.ok("result" in body && !("kind" in body.result), "a bare Message: no kind");
 * ```
 *
 * @module
 */
import type { Behaviour } from "./behaviour.ts";
import { demoAnswer } from "./demo_reply.ts";

interface RpcBody {
  id?: unknown;
  method?: unknown;
  params?: { message?: { parts?: unknown } };
}

/** A JSON-RPC error the way Archestra sends it: HTTP 200, the request's id. */
export function archestraError(id: unknown, code: number, message: string) {
  return { jsonrpc: "2.0", id: id ?? null, error: { code, message } };
}

/** Archestra's answer to a body that passed its checks (token, agent): the reply, or `-32602` for no text. */
export function archestraV1Reply(body: RpcBody, promptId: string, behaviour: Behaviour) {
  const parts = Array.isArray(body.params?.message?.parts) ? body.params.message.parts : [];
  const text = parts.flatMap((part) =>
    part && typeof part === "object" && part.kind === "text" && typeof part.text === "string" ? [part.text] : []
  ).join("\n");
  if (!text) return archestraError(body.id, -32602, "No message content provided");
  const answer = demoAnswer(promptId, text, behaviour);
  const replyParts: unknown[] = [{ kind: "text", text: answer.text }];
  if (answer.data) replyParts.push({ kind: "data", data: answer.data });
  return {
    jsonrpc: "2.0",
    id: body.id ?? 1,
    result: { messageId: crypto.randomUUID(), role: "agent", parts: replyParts },
  };
}

/** Archestra's card for an agent: no `protocolVersion`, no streaming. */
export function archestraV1Card(url: string) {
  return {
    name: "agentstream demo agent",
    description: "Answers deterministically, the way Archestra's /v1 endpoint answers.",
    url,
    version: "1.0.0",
    capabilities: { streaming: false, pushNotifications: false, stateTransitionHistory: false },
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [{ id: "demo", name: "Demo", description: "Summarises what it received.", tags: ["demo"] }],
  };
}
