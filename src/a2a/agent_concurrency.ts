/**
 * @module
 * The adaptive concurrency limits of agent endpoints (`delivery.concurrency: auto`): one per
 * endpoint, shared by every pipeline that calls it, since the agent's capacity is one whoever
 * calls. A limit stays under the endpoint's `agent_limits` concurrency, if it has one.
 *
 * @example
 * ```ts
 * import { AgentConcurrency } from "./agent_concurrency.ts";
 * const limits = new AgentConcurrency({ onChange: ({ label, limit }) => console.log(label, limit) });
 * const limit = limits.limitFor("http://agents.local:9000/v1/a2a/p-1", 256);
 * if (limit !== limits.limitFor("http://agents.local:9000/v1/a2a/p-1", 64)) throw new Error("one per endpoint");
 * ```
 */
import { redact } from "../secrets.ts";
import { AdaptiveLimit } from "./adaptive_limit.ts";
import { LoopLag } from "../util/loop_lag.ts";

export interface AgentConcurrencyOptions {
  /** A limit changed, with a label fit for logs and metrics (no credentials). */
  onChange?: (change: { label: string; limit: number; previous: number; floorMs?: number }) => void;
  /** The endpoint's fixed concurrency from `agent_limits`, if any: the limit never passes it. */
  capOf?: (url: string) => number | undefined;
}

export class AgentConcurrency {
  readonly #options: AgentConcurrencyOptions;
  readonly #limits = new Map<string, AdaptiveLimit>();
  /** Started with the first limit: a process without `auto` pipelines runs no timer for it. */
  #lag: LoopLag | undefined;

  constructor(options: AgentConcurrencyOptions = {}) {
    this.#options = options;
  }

  /**
   * The limit of the endpoint `url`, made on first use with `max` as its ceiling (the first
   * pipeline to call an endpoint sets it: pipelines that share one agent share its limit).
   */
  limitFor(url: string, max: number): AdaptiveLimit {
    let limit = this.#limits.get(url);
    if (!limit) {
      const { origin, pathname } = new URL(url);
      const label = redact(origin + pathname);
      const cap = this.#options.capOf?.(url);
      const lag = this.#lag ??= new LoopLag();
      limit = new AdaptiveLimit({
        max: Math.min(max, cap ?? max),
        lagMs: () => lag.ms,
        onChange: (now, previous) => this.#options.onChange?.({ label, limit: now, previous, floorMs: limit!.floorMs }),
      });
      this.#limits.set(url, limit);
      this.#options.onChange?.({ label, limit: limit.limit, previous: 0 });
    }
    return limit;
  }

  /** Stops the event-loop timer (shutdown). */
  dispose(): void {
    this.#lag?.stop();
  }
}
