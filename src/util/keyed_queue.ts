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
import PQueue from "p-queue";

export class KeyedQueue {
  readonly #slots: PQueue;
  readonly #maxDetached: number;
  #detached = 0;
  /** Per busy key: the starters of the tasks waiting behind the running one. */
  readonly #waiting = new Map<string, (() => void)[]>();

  constructor(concurrency: number) {
    this.#slots = new PQueue({ concurrency });
    this.#maxDetached = concurrency;
  }

  /** Tasks running without a slot, past their `detachAfterMs`. */
  get detached(): number {
    return this.#detached;
  }

  /** Runs `task` once its key is free and a slot is; `undefined` keys are never ordered. */
  add<T>(key: string | undefined, task: () => Promise<T>, detachAfterMs?: number): Promise<T> {
    const run = () => this.#run(task, detachAfterMs);
    if (key === undefined) return run();
    return new Promise<T>((resolve, reject) => {
      const start = () => run().then(resolve, reject).finally(() => this.#next(key));
      const queue = this.#waiting.get(key);
      if (queue) {
        queue.push(start);
      } else {
        this.#waiting.set(key, []);
        start();
      }
    });
  }

  /** Holds a slot until the task ends or detaches; resolves when the task ends. */
  #run<T>(task: () => Promise<T>, detachAfterMs: number | undefined): Promise<T> {
    let finished!: Promise<T>;
    const slot = this.#slots.add((): Promise<unknown> => {
      finished = task();
      return detachAfterMs === undefined
        ? finished
        : Promise.race([finished, this.#detachAfter(finished, detachAfterMs)]);
    });
    return slot.then(() => finished);
  }

  /** Resolves after `ms` if the detached budget has room then (and counts the task as detached). */
  #detachAfter(finished: Promise<unknown>, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.#detached >= this.#maxDetached) return;
        this.#detached++;
        finished.finally(() => this.#detached--).catch(() => {});
        resolve();
      }, ms);
      finished.finally(() => clearTimeout(timer)).catch(() => {});
    });
  }

  #next(key: string): void {
    const queue = this.#waiting.get(key)!;
    const start = queue.shift();
    if (start) start();
    else this.#waiting.delete(key);
  }
}
