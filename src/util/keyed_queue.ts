/**
 * @module
 * Bounded concurrency with per-key order: tasks with the same key run one after another in the
 * order they were added; tasks with different keys (or no key) run in parallel, up to the limit.
 * A task waiting for its key holds no slot, so a slow key never blocks the others.
 *
 * A task that runs longer than its `detachAfterMs` gives its slot back (it keeps its key) while
 * fewer than `concurrency` tasks are detached: one slow call in a hundred then does not cost a
 * hundredth of the throughput per second it takes.
 *
 * It is on every message's path twice (invoke and publish), so it is a counter and two FIFOs
 * rather than a general queue (p-queue cost a tenth of the bridge's CPU with an instant agent),
 * and slow tasks are found by one sweep timer that runs only while tasks wait for a slot, not by
 * a timer per task.
 *
 * @example
 * ```ts
 * import { KeyedQueue } from "./keyed_queue.ts";
 * const queue = new KeyedQueue(8);
 * await Promise.all([
 *   queue.add("customer-1", async () => "first"),
 *   queue.add("customer-1", async () => "second, after first"),
 *   queue.add("customer-2", async () => "in parallel with first"),
 * ]);
 * ```
 */

/** A task holding a slot, as the sweep sees it. */
interface Running {
  readonly startedAt: number;
  readonly detachAfterMs: number;
  release(): void;
}

/** How often waiting tasks look for a slot held past its `detachAfterMs`. */
const SWEEP_MS = 25;

export class KeyedQueue {
  readonly #concurrency: number;
  #running = 0;
  #detached = 0;
  /** Starters of tasks waiting for a slot, first come first served. */
  readonly #waitingForSlot: (() => void)[] = [];
  /** Tasks holding a slot that may detach. */
  readonly #detachable = new Set<Running>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  /** Per busy key: the starters of the tasks waiting behind the running one. */
  readonly #waiting = new Map<string, (() => void)[]>();

  constructor(concurrency: number) {
    this.#concurrency = concurrency;
  }

  /** Tasks running without a slot, past their `detachAfterMs`. */
  get detached(): number {
    return this.#detached;
  }

  /** Runs `task` once its key is free and a slot is; `undefined` keys are never ordered. */
  add<T>(key: string | undefined, task: () => Promise<T>, detachAfterMs?: number): Promise<T> {
    if (key === undefined) return this.#whenSlot(task, detachAfterMs);
    const queue = this.#waiting.get(key);
    if (!queue) {
      this.#waiting.set(key, []);
      return this.#whenSlot(task, detachAfterMs).finally(() => this.#nextOf(key));
    }
    return new Promise<T>((resolve, reject) => {
      queue.push(() => void this.#whenSlot(task, detachAfterMs).then(resolve, reject).finally(() => this.#nextOf(key)));
    });
  }

  #whenSlot<T>(task: () => Promise<T>, detachAfterMs: number | undefined): Promise<T> {
    if (this.#running < this.#concurrency) return this.#start(task, detachAfterMs);
    return new Promise<T>((resolve, reject) => {
      this.#waitingForSlot.push(() => void this.#start(task, detachAfterMs).then(resolve, reject));
      this.#sweep ??= setInterval(() => this.#detachSlow(), SWEEP_MS);
    });
  }

  /** Holds a slot until the task ends or detaches; resolves when the task ends. */
  async #start<T>(task: () => Promise<T>, detachAfterMs: number | undefined): Promise<T> {
    this.#running++;
    let held = true;
    const running: Running | undefined = detachAfterMs === undefined ? undefined : {
      startedAt: performance.now(),
      detachAfterMs,
      release: () => {
        held = false;
        this.#detached++;
        this.#freeSlot();
      },
    };
    if (running) this.#detachable.add(running);
    try {
      return await task();
    } finally {
      if (running) this.#detachable.delete(running);
      if (held) this.#freeSlot();
      else this.#detached--;
    }
  }

  #freeSlot(): void {
    this.#running--;
    const next = this.#waitingForSlot.shift();
    if (next) next();
    if (!this.#waitingForSlot.length && this.#sweep !== undefined) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /** Gives the slots of tasks past their `detachAfterMs` to waiting tasks, within the detached budget. */
  #detachSlow(): void {
    const now = performance.now();
    for (const running of this.#detachable) {
      if (!this.#waitingForSlot.length || this.#detached >= this.#concurrency) return;
      if (now - running.startedAt < running.detachAfterMs) continue;
      this.#detachable.delete(running);
      running.release();
    }
  }

  #nextOf(key: string): void {
    const queue = this.#waiting.get(key)!;
    const start = queue.shift();
    if (start) start();
    else this.#waiting.delete(key);
  }
}
