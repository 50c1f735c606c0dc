/**
 * @module
 * Maps an async iterable with an async function, starting each call as soon as its item arrives
 * and yielding results in the order they complete. Limits and ordering are the function's own
 * business (see {@link KeyedQueue}); how far ahead the input is read is bounded upstream (the
 * source pauses at the in-flight cap).
 *
 * @example
 * ```ts
 * import { mapUnordered } from "./concurrent.ts";
 * async function* numbers() { yield 30; yield 10; }
 * const wait = (ms: number) => new Promise<number>((resolve) => setTimeout(() => resolve(ms), ms));
 * const done = await Array.fromAsync(mapUnordered(numbers(), wait));
 * if (done.join() !== "10,30") throw new Error(`in the order they finish: ${done}`);
 * ```
 */
import { Channel } from "./channel.ts";

export function mapUnordered<T, R>(input: AsyncIterable<T>, fn: (item: T) => Promise<R>): AsyncIterable<R> {
  const output = new Channel<R>();
  const running = new Set<Promise<void>>();
  (async () => {
    for await (const item of input) {
      const task = fn(item).then((result) => void output.send(result), (error) => output.fail(error));
      running.add(task);
      task.finally(() => running.delete(task));
    }
    await Promise.all(running);
    output.close();
  })().catch(async (error) => {
    // Let calls already started finish (and their results be read) before the error ends the stream.
    await Promise.all(running);
    output.fail(error);
  });
  return output;
}
