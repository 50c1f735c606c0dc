/**
 * @module
 * The steps an agent call goes through, one {@link Policy} each (their order is in
 * src/stages/invoke.ts). A policy gets the {@link Attempt} and the rest of the chain (`next`): it may
 * wait before calling it, not call it at all, call it again, or read what came of it. The outcome of
 * a pass through the chain is a call's ({@link CallOutcome}), or one of two that say no call was
 * made: `abandoned` (a stop, or the job went stale: its message is delivered again) and `again`
 * (go through the chain once more, spending no retry: a refusal, a resend, a call held back).
 *
 * @example
 * ```ts
 * import { type Attempt, chain, firstAttempt, type Policy } from "./policy.ts";
 * const seen: string[] = [];
 * const named = (name: string): Policy => async (attempt, next) => {
 *   seen.push(`${name} in`);
 *   const outcome = await next(attempt);
 *   seen.push(`${name} out`);
 *   return outcome;
 * };
 * const call = (_: Attempt) => Promise.resolve({ skipped: "nothing to send" });
 * const outcome = await chain([named("outer"), named("inner")], call)(firstAttempt({ ack: { stale: false } }));
 * if (!("skipped" in outcome)) throw new Error("the call's outcome comes back through the chain");
 * if (seen.join() !== "outer in,inner in,inner out,outer out") throw new Error(`in order, top to bottom: ${seen}`);
 * ```
 */
import type { Outcome as SendOutcome } from "../../a2a/send_message.ts";
import type { FailureClass } from "../../errors.ts";
import { releasePass } from "../../delivery/call_gate.ts";

/** What a call came to: a reply, a failure, or (an answer that came late) skipped. */
export type CallOutcome = SendOutcome;

/** The outcome of one pass through the chain. */
export type Outcome =
  | CallOutcome
  /** No call was made, and none will be: a stop, or the job went stale (why, for logs). */
  | { abandoned: string }
  /** No retry is spent: the chain is to be gone through again (why, for logs). */
  | { again: string };

/** What a circuit's `acquire` said: an ordinary call, or the probe of an open circuit. */
export type Role = "call" | "probe";

/** What the policies need of a job. */
export interface AttemptJob {
  /** The assignment changed: its message is delivered again. */
  readonly ack: { readonly stale: boolean };
  /** The pass through the call gate its call holds (see src/delivery/call_gate.ts). */
  callPass?: () => void;
}

/** One job's attempts at its call, shared by the policies; the fields they set say who sets them. */
export interface Attempt {
  readonly job: AttemptJob;
  /** Which attempt this is, from 1: only the retry policy moves it on. */
  number: number;
  /** Waits (for a circuit, a slot, the agent's limits, the gate, a retry) end when it aborts: a stop. */
  readonly waits?: AbortSignal;
  /** Calls made end when it aborts: the end of a stop's grace period, or the job went stale. */
  readonly signal?: AbortSignal;
  /** The outage gate: what the host's and the agent's circuits said on this pass. */
  roles?: { host: Role; agent: Role };
  /** The call: when it went out on this pass (`performance.now()`); 0 until it does. */
  callStarted: number;
}

/** The rest of the chain, from a policy's point of view; at its end, the call. */
export type Step = (attempt: Attempt) => Promise<Outcome>;

/** One step of the chain. */
export type Policy = (attempt: Attempt, next: Step) => Promise<Outcome>;

/** The policy that does nothing (for a limit a route does not have). */
export const passThrough: Policy = (attempt, next) => next(attempt);

/** `policies` around `call`, the first outermost: they read top to bottom in the order they act. */
export function chain(policies: readonly Policy[], call: Step): Step {
  return policies.reduceRight<Step>((next, policy) => (attempt) => policy(attempt, next), call);
}

/** A job's first attempt. */
export function firstAttempt(job: AttemptJob, signals: { waits?: AbortSignal; signal?: AbortSignal } = {}): Attempt {
  return { job, number: 1, waits: signals.waits, signal: signals.signal, callStarted: 0 };
}

/**
 * Begins a pass through the chain: what the last pass set is cleared, and the job's pass through
 * the call gate released (held from a call until its outcome: the next pass waits without one).
 */
export function newPass(attempt: Attempt): void {
  releasePass(attempt.job);
  attempt.roles = undefined;
  attempt.callStarted = 0;
}

/** Whether this attempt is a retry: a message that already failed once. */
export function isRetry(attempt: Attempt): boolean {
  return attempt.number > 1;
}

/** A stop began (waits end) or calls are being cut short. */
export function stopped(attempt: Attempt): boolean {
  return attempt.waits?.aborted === true || attempt.signal?.aborted === true;
}

/** The failure `outcome` carries, if it is one of `failureClass`. */
export function failureOf(
  outcome: Outcome,
  failureClass: FailureClass,
): Extract<Outcome, { failure: unknown }> | undefined {
  return "failure" in outcome && outcome.failure.class === failureClass ? outcome : undefined;
}
