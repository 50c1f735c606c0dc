/**
 * @module
 * The adaptive limit (`delivery.concurrency: auto`): a call takes a slot of its agent's
 * {@link AdaptiveLimit} (a retry before first calls waiting) and gives it back with what the call
 * said of the agent's capacity: its latency from when it went out (waiting for the agent's limits
 * or the gate is ours), or that the agent was overloaded. A call not made, an answer skipped, and
 * any call of a long-running route (polled for minutes: its duration says nothing of the agent's
 * load) give no sample.
 *
 * @example
 * ```ts
 * import { AdaptiveLimit } from "../../a2a/adaptive_limit.ts";
 * import { failure } from "../../errors.ts";
 * import { firstAttempt } from "./policy.ts";
 * import { adaptiveLimit } from "./adaptive_limit.ts";
 * const limit = new AdaptiveLimit({ max: 8, initial: 2 });
 * let inFlight = -1;
 * const overloaded = { failure: failure("invoke", "transient", "HTTP 429", { overload: true }) };
 * const attempt = firstAttempt({ ack: { stale: false } });
 * await adaptiveLimit(limit, { longRunning: false })(attempt, (attempt) => {
 *   inFlight = limit.inFlight;
 *   attempt.callStarted = performance.now();
 *   return Promise.resolve(overloaded);
 * });
 * if (inFlight !== 1 || limit.inFlight !== 0) throw new Error("a slot held for the call, given back after");
 * if (limit.limit !== 1) throw new Error(`an overload cuts the limit at once: ${limit.limit}`);
 * ```
 */
import type { AdaptiveLimit, LimitSample } from "../../a2a/adaptive_limit.ts";
import { isRetry, passThrough, type Policy } from "./policy.ts";

/** What a call's outcome says about the agent's capacity: its latency, or that it was overloaded. */
export function limitSample(
  outcome: { reply: unknown } | { failure: { overload?: boolean } },
  latencyMs: number,
): LimitSample | undefined {
  if ("reply" in outcome) return { latencyMs, overload: false };
  return outcome.failure.overload ? { latencyMs, overload: true } : undefined;
}

/** The slot of `limit` around each call; none (a fixed concurrency): nothing to do. */
export function adaptiveLimit(limit: AdaptiveLimit | undefined, route: { longRunning: boolean }): Policy {
  if (!limit) return passThrough;
  return async (attempt, next) => {
    await limit.acquire(attempt.waits, { retry: isRetry(attempt) });
    let sample: LimitSample | undefined;
    try {
      const outcome = await next(attempt);
      if (!route.longRunning && ("reply" in outcome || "failure" in outcome)) {
        sample = limitSample(outcome, performance.now() - attempt.callStarted);
      }
      return outcome;
    } finally {
      limit.release(sample);
    }
  };
}
