/**
 * @module
 * Reading a topic to where it ends now: the end of each partition, taken once, and a promise that
 * settles when a consumer has read that far. Control records (transaction markers) take offsets
 * too, so "that far" is told by kafkajs' END_BATCH_PROCESS events, which count them, not by the
 * offsets of the messages a consumer sees.
 *
 * @example
 * ```ts
 * import type { Admin, Consumer } from "kafkajs";
 * import { caughtUp, logEnds } from "./read_to_end.ts";
 * const offsets = [{ partition: 0, low: "0", high: "5" }, { partition: 1, low: "3", high: "3" }]; // 1 is empty
 * const admin = { fetchTopicOffsets: () => Promise.resolve(offsets) } as unknown as Admin;
 * const { ends, records } = await logEnds(admin, "t");
 * if (records !== 5 || ends.size !== 1) throw new Error("five records, in partition 0");
 * let endBatch = (_: unknown) => {};
 * const consumer = {
 *   events: { END_BATCH_PROCESS: "end", CRASH: "crash" },
 *   on: (event: string, listener: (e: unknown) => void) => { if (event === "end") endBatch = listener; },
 * } as unknown as Consumer;
 * const done = caughtUp(consumer, "t", ends); // before consumer.run
 * endBatch({ payload: { topic: "t", partition: 0, lastOffset: "4" } }); // kafkajs, after the batch up to offset 4
 * await done;
 * ```
 */
import type { Admin, Consumer } from "kafkajs";

/** The end offset of each partition of `topic` that holds records now, and how many it holds in all. */
export async function logEnds(admin: Admin, topic: string): Promise<{ ends: Map<number, bigint>; records: number }> {
  const ends = new Map<number, bigint>();
  let records = 0;
  for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
    if (BigInt(high) > BigInt(low)) ends.set(partition, BigInt(high));
    records += Number(BigInt(high) - BigInt(low));
  }
  return { ends, records };
}

/**
 * Resolves once `consumer` has read every partition of `topic` up to `ends` (at once when there is
 * nothing to read); rejects if the consumer crashes for good. Listen before the consumer runs.
 */
export function caughtUp(consumer: Consumer, topic: string, ends: ReadonlyMap<number, bigint>): Promise<void> {
  const left = new Map(ends);
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  if (!left.size) resolve();
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.topic !== topic) return;
    const end = left.get(payload.partition);
    if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) left.delete(payload.partition);
    if (!left.size) resolve();
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) reject(payload.error);
  });
  return promise;
}
