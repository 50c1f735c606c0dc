/**
 * Maps an async iterable with bounded concurrency and yields results as they complete (not in
 * input order). Each item names the p-queue it runs on, so several limits (one per pipeline) can
 * share one stream. It pulls the next input only once the current one has a slot, so the input is
 * never read further ahead than the limits allow.
 *
 * @example
 * ```ts
 * import PQueue from "p-queue";
 * import { mapConcurrent } from "./concurrent.ts";
 * const queue = new PQueue({ concurrency: 4 });
 * async function* numbers() { yield 1; yield 2; yield 3; }
 * for await (const n of mapConcurrent(numbers(), async (n) => n * 2, () => queue)) console.log(n);
 * ```
 */
import type PQueue from "p-queue";
import { Channel } from "./channel.ts";

export function mapConcurrent<T, R>(
  input: AsyncIterable<T>,
  fn: (item: T) => Promise<R>,
  queueFor: (item: T) => PQueue,
): AsyncIterable<R> {
  const output = new Channel<R>();
  const running = new Set<Promise<void>>();
  (async () => {
    for await (const item of input) {
      const queue = queueFor(item);
      const task = queue.add(async () => {
        await output.send(await fn(item));
      }).catch((error) => output.fail(error));
      running.add(task);
      task.finally(() => running.delete(task));
      // Read no further while this item still waits for a slot.
      if (queue.size > 0) await queue.onSizeLessThan(1);
    }
    await Promise.all(running);
    output.close();
  })().catch((error) => output.fail(error));
  return output;
}
