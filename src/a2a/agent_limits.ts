/**
 * @module
 * Limits that protect an agent (and the model behind it): calls in flight at once and calls per
 * interval, counted over every pipeline that calls the agent, since they share it. Pipelines
 * declare them in `agent_limits:`; two different limits for the same agent are a configuration
 * error. Built on p-queue's concurrency and interval caps.
 *
 * @example
 * ```ts
 * import { AgentLimits } from "./agent_limits.ts";
 * const limits = new AgentLimits();
 * const url = "http://agents/v1/a2a/p";
 * if (!limits.set(url, { concurrency: 2, rate: { calls: 10, perMs: 1_000 } })) throw new Error("its first limit");
 * if (limits.set(url, { concurrency: 3 })) throw new Error("a second, different limit is an error");
 * let inFlight = 0, most = 0;
 * const call = async () => {
 *   most = Math.max(most, ++inFlight);
 *   await new Promise((resolve) => setTimeout(resolve, 1));
 *   inFlight--;
 * };
 * await Promise.all([1, 2, 3, 4, 5].map(() => limits.run(url, call)));
 * if (most !== 2) throw new Error(`${most} calls at once`);
 * ```
 */
import PQueue from "p-queue";
import { FatalError } from "../errors.ts";
import type { AgentLimit, Pipeline } from "../model.ts";
import { agentEndpoint, type Archestra } from "./endpoint.ts";

type Limit = Omit<AgentLimit, "agent">;

export class AgentLimits {
  readonly #queues = new Map<string, { queue: PQueue; limit: Limit }>();

  /** Sets the limit of the agent at `url`; returns false if it has a different one already. */
  set(url: string, limit: Limit): boolean {
    const existing = this.#queues.get(url);
    if (existing) return JSON.stringify(existing.limit) === JSON.stringify(limit);
    const queue = new PQueue({
      concurrency: limit.concurrency ?? Number.POSITIVE_INFINITY,
      ...(limit.rate ? { intervalCap: limit.rate.calls, interval: limit.rate.perMs } : {}),
    });
    this.#queues.set(url, { queue, limit });
    return true;
  }

  /** The calls in flight the agent at `url` allows at once, if it has such a limit. */
  concurrencyOf(url: string): number | undefined {
    return this.#queues.get(url)?.limit.concurrency;
  }

  /**
   * Runs `call` when the agent's limits allow; at once for an agent without limits. Rejects with
   * `signal`'s reason if it aborts while the call waits. A `retry` goes before first calls waiting.
   */
  run<T>(url: string, call: () => Promise<T>, signal?: AbortSignal, options: { retry?: boolean } = {}): Promise<T> {
    const entry = this.#queues.get(url);
    return entry ? entry.queue.add(call, { signal, priority: options.retry ? 1 : 0 }) as Promise<T> : call();
  }
}

/** The pipelines' agent limits by endpoint; two different limits for one agent are a {@link FatalError}. */
export function agentLimitsOf(pipelines: readonly Pipeline[], archestra: Archestra): AgentLimits {
  const limits = new AgentLimits();
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const pipeline of pipelines) {
    pipeline.agentLimits.forEach(({ agent, ...limit }, index) => {
      const { url } = agentEndpoint(agent, archestra);
      const where = `${pipeline.file}:agent_limits[${index}]`;
      if (!limits.set(url, limit)) problems.push(`${where}: ${url} has a different limit in ${seen.get(url)}`);
      seen.set(url, seen.get(url) ?? where);
    });
  }
  if (problems.length) throw new FatalError(problems, { config: true });
  return limits;
}
