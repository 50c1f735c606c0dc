/**
 * @module
 * The agent's limits (`agent_limits:`, see {@link AgentLimits}): calls per interval and calls in
 * flight at once, shared by every pipeline that calls the agent. A call waits here until its agent
 * allows it, a retry before first calls. The wait ends at a stop; a call under way goes on (until
 * the end of the grace period, as every call).
 *
 * @example
 * ```ts
 * import { AgentLimits } from "../../a2a/agent_limits.ts";
 * import { firstAttempt } from "./policy.ts";
 * import { rateLimit } from "./rate_limit.ts";
 * const url = "http://agents.local/v1/a2a/p";
 * const limits = new AgentLimits();
 * limits.set(url, { concurrency: 1 });
 * let inFlight = 0, most = 0;
 * const call = async () => {
 *   most = Math.max(most, ++inFlight);
 *   await new Promise((resolve) => setTimeout(resolve, 5));
 *   inFlight--;
 *   return { skipped: "done" };
 * };
 * const limited = rateLimit(limits, url);
 * await Promise.all([1, 2, 3].map(() => limited(firstAttempt({ ack: { stale: false } }), call)));
 * if (most !== 1) throw new Error(`one call at a time: ${most}`);
 * ```
 */
import type { AgentLimits } from "../../a2a/agent_limits.ts";
import { isRetry, passThrough, type Policy } from "./policy.ts";

/** The limits of the agent at `url`; none configured: nothing to do. */
export function rateLimit(limits: AgentLimits | undefined, url: string): Policy {
  if (!limits) return passThrough;
  return (attempt, next) =>
    throughLimits(limits, url, () => next(attempt), {
      retry: isRetry(attempt),
      waits: attempt.waits,
      signal: attempt.signal,
      running: () => attempt.callStarted > 0,
    });
}

/**
 * Runs a call through the agent's limits (p-queue). Its wait ends when `waits` aborts (a stop);
 * p-queue's signal would also end the call once under way, so it aborts then only while the call
 * has not started, and at the end of the grace period (`signal`) as every call does.
 */
async function throughLimits<T>(
  limits: AgentLimits,
  url: string,
  run: () => Promise<T>,
  options: { retry: boolean; waits?: AbortSignal; signal?: AbortSignal; running: () => boolean },
): Promise<T> {
  const { waits, signal, running, retry } = options;
  const queued = new AbortController();
  const stop = () => running() || queued.abort();
  const end = () => queued.abort();
  waits?.addEventListener("abort", stop);
  signal?.addEventListener("abort", end);
  if (waits?.aborted || signal?.aborted) queued.abort();
  try {
    return await limits.run(url, run, queued.signal, { retry });
  } finally {
    waits?.removeEventListener("abort", stop);
    signal?.removeEventListener("abort", end);
  }
}
