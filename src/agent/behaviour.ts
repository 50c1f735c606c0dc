/**
 * @module
 * How the demo agent's flavours treat calls to one prompt id: the one type every flavour reads, kept
 * apart from the server that holds them so the flavours need not import it.
 *
 * @example
 * ```ts
 * import type { Behaviour } from "./behaviour.ts";
 * const slow: Behaviour = { latencyMs: 2_000, workers: 4 };
 * if (slow.workers !== 4) throw new Error("unexpected");
 * ```
 */

/** How the agent treats calls to one prompt id. */
export interface Behaviour {
  /** Wait this long before answering. */
  latencyMs?: number;
  /**
   * Serve at most this many calls at once; answer the others at once with `-32603` (as Archestra
   * reports its LLM provider's rate limit).
   */
  capacity?: number;
  /** Serve at most this many calls at once; the others wait their turn (latency grows with load). */
  workers?: number;
  /** Answer `failStatus` (default 503) this many times per message id before succeeding. */
  failTimes?: number;
  failStatus?: number;
  /** Seconds to send in `Retry-After` with those failures. */
  retryAfter?: number;
  /** Echo the request's `Authorization` header in those failures' bodies (a careless agent). */
  echoAuthorization?: boolean;
  /** Answer JSON-RPC `-32603` at HTTP 200 (Archestra's LLM rate limit) this many times per message id. */
  rpcFailTimes?: number;
  /** Answer every call with this JSON-RPC error. */
  rpcError?: { code: number; message: string };
  /** Refuse the token while this file exists, as the flavour refuses one (`-32600` at HTTP 200, or HTTP 401). */
  refuseWhile?: string;
  /**
   * Answer with a task (SDK flavours and Archestra's `/v2`): `completed` at once, or `working` for
   * `workMs` (default 500; read afresh, so a test can shorten it), cancellable meanwhile.
   */
  task?: "completed" | "working";
  workMs?: number;
  /** The state a task ends in (default `completed`). */
  finalState?: "completed" | "failed" | "input-required" | "auth-required";
  /**
   * Ask this many times before answering (SDK flavours and Archestra's `/v2`): the task stops
   * `input-required` with a question; on Archestra's `/v2` the question is a tool approval
   * (`metadata.approvalRequests`), answered by `taskOps.approvalDecisions`. The final reply says
   * what the last answer was; a denied approval ends the task `completed` with the refund not made.
   */
  asks?: number;
  /** Offer streaming (the card says `streaming: true`); calls are answered with a task's events. */
  stream?: boolean;
  /** Add a data part `{ severity }` to each reply: `critical` when the text speaks of money or outages. */
  classify?: boolean;
  /** Answer with a window's readings summed up (range, mean, trend, anomalies): see `demoTrends`. */
  trends?: boolean;
  /** Hold every answer until this settles: lets a test act while a call is in flight. */
  gate?: Promise<unknown>;
  /** Answer with this as the JSON-RPC `result`, whatever it is (a broken agent). */
  rawResult?: unknown;
  /** Send the headers and the start of a body, then nothing more (a stalled agent). */
  stallBody?: boolean;
}
