/**
 * @module
 * Errors as values. Every failure of a message is a {@link StageFailure}, made here and only here,
 * so that DLQ headers, logs and counters agree by construction.
 *
 * - `permanent`: retrying cannot help (bad JSON, a missing template field, a JSON-RPC error, HTTP 4xx).
 * - `transient`: may succeed later (timeout, connection refused, HTTP 429/5xx); retried by invoke.
 * - `exhausted`: a transient failure that outlived its retries.
 * - `refused`: the agent refuses the caller, not the message (a token it does not accept, an agent
 *   it does not know): never dead-lettered; the agent's routes wait until it accepts again.
 * - `seen`: the agent refuses a message id it has already answered (Archestra's `/v2`, after a
 *   redelivery): never dead-lettered; invoke sends the message again under a new id.
 * - `context-lost`: the agent does not know the conversation (contextId) sent: invoke starts a new
 *   one for the key (see `a2a/conversations.ts`); never dead-lettered.
 * - `timeout`: a long-running task still unfinished at its route's timeout (x-task-id names it).
 * - `input-required`, `auth-required`: the agent's task stopped to ask for more (x-task-id names it).
 * - `loop`: a chain of pipelines went deeper than its limit (x-hop-count).
 * - `internal`: a stage threw for this message (a bug, or input our code cannot handle); only this
 *   message fails, and the DLQ record carries the error.
 */
import { redact } from "./secrets.ts";

export type StageName = "decode" | "answer" | "match" | "transform" | "invoke" | "publish";
export type FailureClass =
  | "permanent"
  | "transient"
  | "exhausted"
  | "refused"
  | "seen"
  | "context-lost"
  | "timeout"
  | "input-required"
  | "auth-required"
  | "loop"
  | "internal";

/** The classes a DLQ record can carry (`transient` is retried, `refused` waits, `seen` and `context-lost` are sent anew: none is dead-lettered). */
export const DEAD_LETTER_CLASSES: readonly FailureClass[] = [
  "permanent",
  "exhausted",
  "timeout",
  "input-required",
  "auth-required",
  "loop",
  "internal",
];

/** Why one message could not be turned into a reply. */
export interface StageFailure {
  readonly stage: StageName;
  readonly class: FailureClass;
  readonly message: string;
  /** Agent calls made before giving up (0 for failures before invoke). */
  readonly attempts: number;
  /** For transient failures: how long the other side asked us to wait (HTTP `Retry-After`). */
  readonly retryAfterMs?: number;
  /**
   * For transient failures: the agent is at its capacity (a timeout, HTTP 429/503/504, JSON-RPC
   * `-32603`), which makes an adaptive concurrency limit shrink.
   */
  readonly overload?: boolean;
  /**
   * For transient failures: the agent could not be reached at all (connection refused, no answer in
   * time, HTTP 5xx), as opposed to an answer that this call failed (`-32603`, HTTP 429).
   */
  readonly unreachable?: boolean;
  /** The agent's task, when the failure is about one. */
  readonly taskId?: string;
}

/** Builds a {@link StageFailure}; the one constructor every stage uses. */
export function failure(
  stage: StageName,
  failureClass: FailureClass,
  message: string,
  extra: { attempts?: number; retryAfterMs?: number; taskId?: string; overload?: boolean; unreachable?: boolean } = {},
): StageFailure {
  const { overload, unreachable, ...rest } = extra;
  return {
    stage,
    class: failureClass,
    message: redact(message),
    attempts: extra.attempts ?? 0,
    ...rest,
    ...(overload ? { overload } : {}),
    ...(unreachable ? { unreachable } : {}),
  };
}

/**
 * A problem that must stop the process: bad configuration, a broker that cannot be reached.
 * `lines` are printed one per line, already in `file:path: reason` form where they come from a file.
 */
/**
 * Work given up without an outcome, because its job went stale (its partition moved) or the
 * bridge stopped while it waited: its message is delivered again, so nothing is written for it.
 */
export class Abandoned extends Error {
  override name = "Abandoned";
}

export class FatalError extends Error {
  readonly lines: readonly string[];
  /** 2 for bad configuration, 1 for anything else. */
  readonly exitCode: number;
  constructor(lines: string | readonly string[], options: { config?: boolean } = {}) {
    const list = (typeof lines === "string" ? [lines] : lines).map(redact);
    super(list.join("\n"));
    this.name = "FatalError";
    this.lines = list;
    this.exitCode = options.config ? 2 : 1;
  }
}

/** The message of any thrown value, for logs and headers. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs a command's `main` and exits with the code it returns (0 when none); a {@link FatalError}
 * prints its lines to stderr, each after `prefix`, and exits with its code. Anything else is a bug
 * and is thrown, with its stack.
 */
export async function runCommand(main: () => Promise<number | void>, prefix = ""): Promise<never> {
  try {
    Deno.exit((await main()) ?? 0);
  } catch (error) {
    if (!(error instanceof FatalError)) throw error;
    for (const line of error.lines) console.error(`${prefix}${line}`);
    Deno.exit(error.exitCode);
  }
}
