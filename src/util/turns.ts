/**
 * @module
 * Steps taken in turn per key: a step starts once the last step given for its key has settled, and
 * steps of different keys (or without one) do not wait for each other. The map holds a key only
 * while it has a step running or waiting. Unlike KeyedQueue (keyed_queue.ts), no limit and no slots: it
 * orders work that waits (for a schema registry, say) before it takes a slot anywhere.
 *
 * @example
 * ```ts
 * import { Turns } from "./turns.ts";
 * const turns = new Turns();
 * const done: string[] = [];
 * const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
 * await Promise.all([
 *   turns.take("a", async () => { await wait(20); done.push("a1"); }),
 *   turns.take("a", async () => { done.push("a2"); }),
 *   turns.take("b", async () => { done.push("b1"); }),
 * ]);
 * if (done.join() !== "b1,a1,a2") throw new Error(done.join());
 * ```
 */

export class Turns {
  readonly #last = new Map<string, Promise<unknown>>();

  /** `step`'s result, once it has run in its turn for `key` (at once without a key). `step` must not reject. */
  take<T>(key: string | undefined, step: () => Promise<T>): Promise<T> {
    if (key === undefined) return step();
    const next = (this.#last.get(key) ?? Promise.resolve()).then(step);
    this.#last.set(key, next);
    void next.then(() => this.#last.get(key) === next && this.#last.delete(key));
    return next;
  }
}
