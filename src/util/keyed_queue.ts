/**
 * Bounded concurrency with per-key order: tasks with the same key run one after another in the
 * order they were added; tasks with different keys (or no key) run in parallel, up to the limit.
 * A task waiting for its key holds no slot, so a slow key never blocks the others.
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
  /** Per busy key: the starters of the tasks waiting behind the running one. */
  readonly #waiting = new Map<string, (() => void)[]>();

  constructor(concurrency: number) {
    this.#slots = new PQueue({ concurrency });
  }

  /** Tasks running now. */
  get running(): number {
    return this.#slots.pending;
  }

  /** Runs `task` once its key is free and a slot is; `undefined` keys are never ordered. */
  add<T>(key: string | undefined, task: () => Promise<T>): Promise<T> {
    if (key === undefined) return this.#slots.add(task);
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.#slots.add(task).then(resolve, reject).finally(() => this.#next(key));
      };
      const queue = this.#waiting.get(key);
      if (queue) {
        queue.push(start);
      } else {
        this.#waiting.set(key, []);
        start();
      }
    });
  }

  #next(key: string): void {
    const queue = this.#waiting.get(key)!;
    const start = queue.shift();
    if (start) start();
    else this.#waiting.delete(key);
  }
}
