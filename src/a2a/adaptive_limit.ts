/**
 * @module
 * Adaptive concurrency for one agent endpoint: how many calls may be in flight at once, learned
 * from the agent's answers instead of set by hand (`delivery.concurrency: auto`).
 *
 * An LLM agent's capacity is unknown and moves by the minute (the provider's rate limit, the model's
 * load, other callers), and it shows in two ways: the agent refuses calls (timeouts, HTTP 429/503,
 * Archestra's `-32603`), or it queues them and latency rises. The limit reads both, the way TCP
 * Vegas and Netflix's concurrency-limits (VegasLimit, AIMDLimit) do, once per window of calls
 * (about one round trip's worth, so a change is judged by its effect; at least 100 ms and 8 calls):
 *
 * - **Overload** (a refused call): the limit drops to 0.9 × the calls still in flight, at once
 *   (multiplicative decrease, as AIMD; gentle, because a rate limit is a hard edge that the limit
 *   should hug, not flee). At once, because a refusal comes back fast and its slot would go straight
 *   to another call to refuse; of the calls in flight, because those are about what the agent took
 *   (after a slow start overshot, far fewer than the limit). Each further refusal within that round
 *   trip of a call begun after the cut takes one more slot away, so that slots freed by refusals are
 *   not refilled with calls to refuse; one begun before it was counted by the cut: a burst of
 *   timeouts that began together (a slow agent's stall) costs one cut, not a slot each.
 * - **Queueing**: with `floor` the lowest window latency seen lately (the agent's unloaded latency)
 *   and `latency` this window's (the mean without its slowest tenth), about `limit × (1 − (1.1 × floor + 10 ms) / latency)` calls are
 *   queued at the agent (1.1: window latencies scatter, and the floor, their minimum, sits below the agent's
 *   own latency; 10 ms, plus how late the event loop runs now: the bridge's own event loop, busy
 *   with Kafka, delays answers that much, and a saturated one more).
 *   Above `beta` the limit drops to what fits the floor; below `alpha` it grows, and in between it
 *   holds. It grows by half per window until the first queue or refusal (a slow start: by half, not
 *   double, because the refusals of an overshoot each cost a retry); then by
 *   `beta` while no queue shows, or by `log10(limit)` while a small one does; and by one within 30 s
 *   of a refusal, so that it hugs a rate limit with few refused calls instead of overshooting it.
 *   Windows, not single calls, because LLM latencies vary per prompt.
 * - **Not using the limit** (fewer than half its calls in flight): no growth, so an idle agent's
 *   limit does not drift up unearned.
 * - The floor is measured again every 30 s (at least 30 windows): one window runs at half the limit,
 *   so that the queue drains and the latency seen is the agent's own. Without this, a floor kept
 *   forever would hold the limit down after the agent became slower for good, and one raised
 *   gradually would let a queue creep in.
 *
 * A change is judged only by calls started after it: those begun before show the old limit.
 * The limit stays within `[min, max]`. Calls over it wait their turn in order.
 *
 * @example
 * ```ts
 * import { AdaptiveLimit } from "./adaptive_limit.ts";
 * const limit = new AdaptiveLimit({ max: 64 });
 * await limit.acquire();
 * const started = performance.now();
 * await new Promise((resolve) => setTimeout(resolve, 5)); // the call to the agent
 * limit.release({ latencyMs: performance.now() - started, overload: false });
 * if (limit.limit !== 4) throw new Error("4 at first; it grows while the agent keeps up");
 * ```
 */

/** What one call said about the agent's capacity. */
export interface LimitSample {
  /** How long the call took. */
  latencyMs: number;
  /** The agent refused it for lack of capacity (timeout, HTTP 429/503, JSON-RPC -32603). */
  overload: boolean;
}

export interface AdaptiveLimitOptions {
  /** The lowest limit (default 1). */
  min?: number;
  /** The highest limit (default 256). */
  max?: number;
  /** Where the limit starts (default 4, at most `max`). */
  initial?: number;
  /** Called when the limit changes. */
  onChange?: (limit: number, previous: number) => void;
  /** For tests: the clock, in ms. */
  now?: () => number;
  /**
   * How late this process's event loop runs now, in ms (see {@link LoopLag}): latency it adds is
   * the bridge's own, not a queue at the agent. Default: none.
   */
  lagMs?: () => number;
}

const MIN_WINDOW_SAMPLES = 8;
/** Windows last at least this long: an agent that answers in 2 ms would otherwise be judged on noise. */
const MIN_WINDOW_MS = 100;
const FLOOR_TTL_MS = 30_000;
const FLOOR_TTL_WINDOWS = 30;
const BACKOFF = 0.9;
/**
 * Latency within this factor of the floor counts as no queue: window latencies scatter around the
 * agent's own latency, and the floor, their minimum, sits below it.
 */
const TOLERANCE = 1.1;
/**
 * And within this many ms: below it the difference is the bridge's own event loop, busy with Kafka
 * batches, not a queue at the agent (which matters for agents that answer in a few ms).
 */
const SLACK_MS = 10;
/** How long after a refusal the limit grows by one per window only. */
const CAREFUL_MS = 30_000;

export class AdaptiveLimit {
  readonly min: number;
  readonly max: number;
  #limit: number;
  #inFlight = 0;
  /** Calls waiting for a slot: retries first (in their order), then first calls. */
  readonly #waiting: (() => void)[] = [];
  /** How many of `#waiting`, from its head, are retries. */
  #retriesWaiting = 0;
  #slowStart = true;
  #floor: number | undefined;
  #floorAt = 0;
  #windowsSinceFloor = 0;
  /** The limit to go back to after a window at half the limit to measure the floor. */
  #restore: number | undefined;
  // The window under way.
  #latencies: number[] = [];
  #overloads = 0;
  #busiest = 0;
  #windowStart: number;
  #overloadAt = Number.NEGATIVE_INFINITY;
  /** When the limit last changed: calls started before say nothing about the new one. */
  #changedAt = Number.NEGATIVE_INFINITY;
  readonly #onChange?: (limit: number, previous: number) => void;
  readonly #now: () => number;
  readonly #lagMs: () => number;

  constructor(options: AdaptiveLimitOptions = {}) {
    this.min = Math.max(1, options.min ?? 1);
    this.max = Math.max(this.min, options.max ?? 256);
    this.#limit = clamp(options.initial ?? 4, this.min, this.max);
    this.#onChange = options.onChange;
    this.#now = options.now ?? (() => performance.now());
    this.#lagMs = options.lagMs ?? (() => 0);
    this.#windowStart = this.#now();
  }

  /** Calls allowed in flight now. */
  get limit(): number {
    return Math.floor(this.#limit);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** The agent's unloaded latency as last measured, in ms; `undefined` before enough calls. */
  get floorMs(): number | undefined {
    return this.#floor;
  }

  /**
   * Resolves when a call may start; rejects with `signal`'s reason if it aborts first. A `retry` (a
   * message that already failed once) goes before every first call waiting: under a burst that the
   * agent rate-limits, first calls queued for slots would otherwise keep every retry, and so every
   * answer, waiting until the last of them had failed.
   */
  acquire(signal?: AbortSignal, options: { retry?: boolean } = {}): Promise<void> {
    if (this.#inFlight < this.limit && !this.#waiting.length) {
      this.#start();
      return Promise.resolve();
    }
    signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const start = () => {
        signal?.removeEventListener("abort", abort);
        this.#start();
        resolve();
      };
      const abort = () => {
        const at = this.#waiting.indexOf(start);
        if (at >= 0) this.#waiting.splice(at, 1);
        if (at >= 0 && at < this.#retriesWaiting) this.#retriesWaiting--;
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", abort, { once: true });
      if (options.retry) this.#waiting.splice(this.#retriesWaiting++, 0, start);
      else this.#waiting.push(start);
    });
  }

  /** Ends a call begun with {@link acquire}; `sample` tells what it said (none: it says nothing). */
  release(sample?: LimitSample): void {
    this.#inFlight--;
    if (sample) this.#record(sample);
    this.#wake();
  }

  #start(): void {
    this.#inFlight++;
    if (this.#inFlight > this.#busiest) this.#busiest = this.#inFlight;
  }

  #wake(): void {
    while (this.#waiting.length && this.#inFlight < this.limit) {
      if (this.#retriesWaiting) this.#retriesWaiting--;
      this.#waiting.shift()!();
    }
  }

  #record({ latencyMs, overload }: LimitSample): void {
    const now = this.#now();
    if (overload) {
      // Whenever the call began: a timeout comes back a long time after its start.
      this.#overloads++;
      this.#slowStart = false;
      if (now - this.#overloadAt < Math.max(MIN_WINDOW_MS, this.#floor ?? 0)) {
        // More refusals within a round trip of a cut: each gives its slot up, so it is not handed
        // straight to another call to refuse. But not a call that began before the cut: the cut
        // counted it among those in flight, so a burst of timeouts that began together (a stall of
        // a slow agent) costs one cut, not one slot each (a limit of 1 would take minutes to climb
        // back at 10 s a call).
        if (now - latencyMs >= this.#overloadAt) this.#set(this.#limit - 1, now);
        return;
      }
      this.#overloadAt = now;
      this.#set(Math.min(this.#limit, this.#inFlight + 1) * BACKOFF, now);
      this.#restore = undefined;
      this.#newWindow(now);
      return;
    }
    if (now - latencyMs < this.#changedAt) return; // it shows the limit before the last change
    this.#latencies.push(latencyMs);
    const samples = this.#latencies.length + this.#overloads;
    // About one round trip's worth of calls: a change of the limit shows in latency a round trip later.
    const roundTrip = Math.max(MIN_WINDOW_MS, this.#floor ?? 0);
    // And half the limit's worth of calls: the first to come back after a change are those that did
    // not queue, and a window of them alone would miss the queue the change made.
    const wanted = Math.max(MIN_WINDOW_SAMPLES, Math.ceil(this.#limit / 2));
    if (samples < wanted || now - this.#windowStart < roundTrip) return;
    this.#closeWindow(now);
  }

  #closeWindow(now: number): void {
    const latency = this.#latencies.length ? typicalOf(this.#latencies) : undefined;
    const busy = this.#busiest * 2 >= this.#limit;
    this.#newWindow(now);
    this.#windowsSinceFloor++;

    if (this.#restore !== undefined) {
      // The window at half the limit: its latency is the agent's own, without our queue.
      const restore = this.#restore;
      this.#restore = undefined;
      if (latency !== undefined) this.#setFloor(latency, now);
      this.#set(restore, now);
      return;
    }
    if (latency === undefined) return;
    if (this.#floor === undefined || latency < this.#floor) this.#setFloor(latency, now);
    const floor = this.#floor!;
    if (now - this.#floorAt > FLOOR_TTL_MS && this.#windowsSinceFloor >= FLOOR_TTL_WINDOWS) {
      this.#restore = this.#limit;
      this.#set(this.#limit / 2, now);
      return;
    }
    const log10 = Math.max(1, Math.log10(this.#limit));
    const alpha = 3 * log10;
    const beta = 6 * log10;
    const expected = floor * TOLERANCE + SLACK_MS + this.#lagMs();
    const queued = Math.max(0, this.#limit * (1 - expected / latency));
    if (queued > log10) this.#slowStart = false;
    if (queued > beta) {
      // Down to what the agent serves at its floor latency, plus a small queue; at most halved.
      this.#set(Math.max(this.#limit / 2, this.#limit * (expected / latency) + alpha), now);
    } else if (queued < alpha && busy) {
      const step = this.#slowStart
        ? this.#limit / 2
        : now - this.#overloadAt < CAREFUL_MS
        ? 1
        : queued <= log10
        ? beta
        : log10;
      this.#set(this.#limit + step, now);
    }
  }

  /** Starts a window: the last one was judged, or a refusal made it moot. */
  #newWindow(now: number): void {
    this.#latencies = [];
    this.#overloads = 0;
    this.#busiest = this.#inFlight;
    this.#windowStart = now;
  }

  #setFloor(ms: number, now: number): void {
    this.#floor = ms;
    this.#floorAt = now;
    this.#windowsSinceFloor = 0;
  }

  #set(next: number, now: number): void {
    const previous = this.limit;
    this.#limit = clamp(next, this.min, this.max);
    if (this.limit !== previous) {
      this.#changedAt = now;
      this.#onChange?.(this.limit, previous);
      this.#wake();
    }
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/**
 * A window's latency: the mean of its samples without the slowest tenth. The mean, not the median,
 * because the first calls back after a change are those that did not queue, and a median of them
 * hides the queue; without the slowest tenth, because one prompt that takes a minute says nothing
 * about the agent's load.
 */
function typicalOf(values: number[]): number {
  values.sort((a, b) => a - b);
  const kept = values.length - Math.floor(values.length / 10);
  let sum = 0;
  for (let i = 0; i < kept; i++) sum += values[i];
  return sum / kept;
}
