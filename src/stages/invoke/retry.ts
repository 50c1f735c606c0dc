/**
 * @module
 * Retries, outermost in the chain: it goes through the rest once per pass, and again at once, with
 * no retry spent, when a step asks (`again`: a refusal, a resend, a call held back). A transient
 * failure is retried with exponential backoff and jitter, honouring `Retry-After` up to
 * `max_backoff` (a slot, and the key behind it, is never held longer), and ends `exhausted` when
 * the retries are spent. No call is in flight while it backs off: the job's pass through the call
 * gate is released, so a resubscription need not wait for it.
 *
 * While the agent (or its host) is down its callers wait at the outage gate instead of backing off;
 * a probe is this message's retry, and spends one. A message that spends its retries while nobody
 * else got an answer either (or as a probe) is either an outage or a message the agent cannot take:
 * the agent's card, asked afresh (`isUp`), tells which. An agent that answers fails the message as
 * `exhausted`; one that does not opens its circuit (`trip`), and the message waits with the others.
 *
 * @example
 * ```ts
 * import { Circuit } from "../../circuit.ts";
 * import { failure } from "../../errors.ts";
 * import { firstAttempt } from "./policy.ts";
 * import { retry } from "./retry.ts";
 * const waits: number[] = [];
 * const policy = retry({
 *   retries: { max: 2, backoffMs: 100, maxBackoffMs: 1_000 },
 *   circuits: { host: new Circuit(), agent: new Circuit() },
 *   sleep: (ms) => (waits.push(ms), Promise.resolve()),
 *   random: () => 0,
 * });
 * const busy = { failure: failure("invoke", "transient", "HTTP 429", { retryAfterMs: 500 }) };
 * const attempt = firstAttempt({ ack: { stale: false } });
 * const outcome = await policy(attempt, () => Promise.resolve(busy));
 * if (!("failure" in outcome) || outcome.failure.class !== "exhausted") throw new Error("exhausted");
 * if (attempt.number !== 3) throw new Error("a first call and two retries");
 * if (waits.join() !== "500,500") throw new Error(`Retry-After outweighs the backoff: ${waits}`);
 * ```
 */
import { releasePass } from "../../delivery/call_gate.ts";
import { failure } from "../../errors.ts";
import type { Pipeline } from "../../model.ts";
import type { Circuits } from "./outage_gate.ts";
import { probing } from "./outage_gate.ts";
import { failureOf, newPass, type Policy } from "./policy.ts";

/** The wait before retry number `retry` (1-based): doubling from `backoffMs`, capped, half jittered. */
export function backoffDelay(
  retry: number,
  retries: Pipeline["delivery"]["retries"],
  random: () => number,
): number {
  const full = Math.min(retries.maxBackoffMs, retries.backoffMs * 2 ** (retry - 1));
  return full / 2 + (full / 2) * random();
}

export interface RetryOptions {
  retries: Pipeline["delivery"]["retries"];
  /** The circuits the outage gate below passes: while one is open, callers wait there instead. */
  circuits: Circuits;
  /**
   * Whether the agent is up (its card answers): asked when a message spends its retries and
   * nobody got an answer meanwhile. None (no agent circuit): the message ends `exhausted`.
   */
  isUp?: () => Promise<boolean>;
  /** Waits between retries; ends early when its signal aborts. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Jitter source in [0, 1). */
  random: () => number;
}

/** The retry policy. */
export function retry({ retries, circuits: { host, agent }, isUp, sleep, random }: RetryOptions): Policy {
  return async (attempt, next) => {
    const successesBefore = agent.successes;
    for (;;) {
      newPass(attempt);
      const outcome = await next(attempt);
      if ("again" in outcome) continue;
      const transient = failureOf(outcome, "transient");
      if (!transient) return outcome;
      const problem = transient.failure;
      const n = attempt.number;
      const spent = n > retries.max;
      if (spent && isUp && (probing(attempt) || agent.successes === successesBefore)) {
        // Nobody got an answer from this agent while this message spent its retries: is the agent
        // down, or is it this message? An agent whose card answers is up, so the message ends here.
        if (await isUp()) {
          // Its circuit stays as it is: a card that answers is no call that succeeded, and closing it
          // would let every waiting message out to fail, and out of the card check.
          if (attempt.roles?.host === "probe") host.succeeded();
          const why = `${problem.message} (after ${n} attempts; the agent is up)`;
          return { failure: failure("invoke", "exhausted", why, { attempts: n }) };
        }
        agent.trip();
      }
      // While the agent is down its callers wait; a probe is this message's retry, and spends one.
      if (host.open || agent.open) {
        if (probing(attempt) && !spent) attempt.number++;
        continue;
      }
      if (spent) {
        return { failure: failure("invoke", "exhausted", `${problem.message} (after ${n} attempts)`, { attempts: n }) };
      }
      const retryAfter = Math.min(problem.retryAfterMs ?? 0, retries.maxBackoffMs);
      const delay = Math.max(backoffDelay(n, retries, random), retryAfter);
      attempt.number++;
      releasePass(attempt.job);
      await sleep(delay, attempt.waits);
    }
  };
}
