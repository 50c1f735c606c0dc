/**
 * @module
 * Tracks which consumed offsets have a durable outcome, per partition, and says what may be
 * committed: the lowest offset still pending, or one past the last offset seen when nothing is
 * pending. A message is registered with the number of outcomes it needs (one per pipeline that
 * takes it); it is finished when all of them are done. A reset (the assignment changed) starts a new
 * generation: everything unfinished is forgotten, and Kafka delivers it again from the committed offsets.
 *
 * @example
 * ```ts
 * import { OffsetTracker } from "./offsets.ts";
 * const tracker = new OffsetTracker();
 * tracker.register("t", 0, "5", 1);
 * tracker.register("t", 0, "6", 1);
 * tracker.done("t", 0, "6");
 * tracker.committable(); // [{ topic: "t", partition: 0, offset: "5" }]: 5 is still pending
 * tracker.done("t", 0, "5");
 * tracker.committable(); // [{ topic: "t", partition: 0, offset: "7" }]
 * ```
 */
import { partitionId } from "../model.ts";

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  /** The next offset to consume, as Kafka commits it. */
  offset: string;
}

interface PartitionState {
  topic: string;
  partition: number;
  /** Registered offsets in order, from `head` on, with the outcomes each still needs. */
  offsets: bigint[];
  remaining: Map<bigint, number>;
  head: number;
  /** Offsets of this partition registered and not yet finished. */
  pending: number;
  /** Finished offsets behind the lowest unfinished one (what {@link OffsetTracker.behind} counts). */
  finished: number;
  next: bigint | undefined;
  committed: bigint | undefined;
}

export class OffsetTracker {
  #partitions = new Map<string, PartitionState>();
  #pending = 0;
  #finished = 0;
  #idle = new Set<() => void>();
  #generation = 0;

  /** Bumped by {@link reset}; registrations and outcomes carry it. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Forgets every partition and pending message and starts a new generation (after a rebalance,
   * Kafka hands out uncommitted messages again). Take {@link committable} first.
   */
  reset(): void {
    this.#generation++;
    this.#partitions.clear();
    this.#pending = 0;
    this.#finished = 0;
    this.#wakeIdle();
  }

  #wakeIdle(): void {
    for (const wake of this.#idle) wake();
    this.#idle.clear();
  }

  /** Messages registered and not yet finished. */
  get pending(): number {
    return this.#pending;
  }

  /** Finished messages that wait behind an unfinished one of their partition, in all partitions. */
  get finishedBehind(): number {
    return this.#finished;
  }

  #state(topic: string, partition: number): PartitionState {
    const id = partitionId(topic, partition);
    let state = this.#partitions.get(id);
    if (!state) {
      state = {
        topic,
        partition,
        offsets: [],
        remaining: new Map(),
        head: 0,
        pending: 0,
        finished: 0,
        next: undefined,
        committed: undefined,
      };
      this.#partitions.set(id, state);
    }
    return state;
  }

  /**
   * Records a consumed message that needs `outcomes` outcomes (0: finished already). A message seen
   * again (redelivered after a rebalance) while still pending just needs more outcomes.
   */
  register(topic: string, partition: number, offset: string, outcomes: number): void {
    const state = this.#state(topic, partition);
    const at = BigInt(offset);
    if (state.next === undefined || at >= state.next) state.next = at + 1n;
    if (outcomes <= 0) {
      this.#advance(state);
      return;
    }
    const left = state.remaining.get(at);
    state.remaining.set(at, (left ?? 0) + outcomes);
    if (left !== undefined) return;
    this.#pending++;
    state.pending++;
    const last = state.offsets.at(-1);
    if (last === undefined || at > last) {
      state.offsets.push(at);
      return;
    }
    // A redelivery below offsets already seen: keep the list sorted and the head on the lowest.
    let index = state.offsets.findIndex((seen) => seen >= at);
    if (state.offsets[index] === at) index = -1;
    if (index >= 0) state.offsets.splice(index, 0, at);
    const position = state.offsets.indexOf(at);
    if (position < state.head) state.head = position;
    this.#recount(state);
  }

  /** Brings the count of finished messages behind the head up to date (after the head or the list moved). */
  #recount(state: PartitionState): void {
    const finished = state.offsets.length - state.head - state.pending;
    this.#finished += finished - state.finished;
    state.finished = finished;
  }

  /** Records one durable outcome for a registered message (late outcomes of forgotten work are the acks' to drop). */
  done(topic: string, partition: number, offset: string): void {
    const state = this.#state(topic, partition);
    const at = BigInt(offset);
    const left = state.remaining.get(at);
    if (left === undefined) throw new Error(`offset ${topic}/${partition}@${offset} was not registered`);
    if (left > 1) {
      state.remaining.set(at, left - 1);
      return;
    }
    state.remaining.delete(at);
    this.#pending--;
    state.pending--;
    this.#advance(state);
    if (this.#pending === 0) this.#wakeIdle();
  }

  #advance(state: PartitionState): void {
    while (state.head < state.offsets.length && !state.remaining.has(state.offsets[state.head])) state.head++;
    // Compact now and then, so a long-running partition does not grow without bound.
    if (state.head > 1024 && state.head * 2 > state.offsets.length) {
      state.offsets = state.offsets.slice(state.head);
      state.head = 0;
    }
    this.#recount(state);
  }

  /**
   * A partition's lowest unfinished offset (none: nothing is pending), and how many finished
   * messages wait behind it to be committed.
   */
  behind(topic: string, partition: number): { head: string | undefined; finished: number } {
    const state = this.#partitions.get(partitionId(topic, partition));
    if (!state || state.head >= state.offsets.length) return { head: undefined, finished: 0 };
    return { head: String(state.offsets[state.head]), finished: state.finished };
  }

  /** Every partition with an unfinished message: its lowest one, and the finished ones behind it. */
  *held(): Iterable<{ topic: string; partition: number; head: string; finished: number }> {
    for (const state of this.#partitions.values()) {
      if (state.head < state.offsets.length) {
        const { topic, partition, finished } = state;
        yield { topic, partition, head: String(state.offsets[state.head]), finished };
      }
    }
  }

  /** Every partition's finished offsets above its lowest unfinished one (what a commit cannot pass yet). */
  *finishedAbove(): Iterable<{ topic: string; partition: number; offsets: bigint[] }> {
    for (const state of this.#partitions.values()) {
      if (!state.finished) continue;
      const offsets = state.offsets.slice(state.head).filter((offset) => !state.remaining.has(offset));
      yield { topic: state.topic, partition: state.partition, offsets };
    }
  }

  /** Outcomes a registered message still waits for (0 once it is finished). */
  outstanding(topic: string, partition: number, offset: string): number {
    return this.#state(topic, partition).remaining.get(BigInt(offset)) ?? 0;
  }

  /** Resolves once every registered message is finished, or at once when `signal` aborts. */
  idle(signal?: AbortSignal): Promise<void> {
    if (this.#pending === 0 || signal?.aborted) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#idle.add(resolve);
    return untilAborted(promise, signal, () => this.#idle.delete(resolve));
  }

  /** The commit point of every partition whose point moved since it was last marked committed. */
  committable(): TopicPartitionOffset[] {
    const result: TopicPartitionOffset[] = [];
    for (const state of this.#partitions.values()) {
      const point = state.head < state.offsets.length ? state.offsets[state.head] : state.next;
      if (point !== undefined && point !== state.committed) {
        result.push({ topic: state.topic, partition: state.partition, offset: String(point) });
      }
    }
    return result;
  }

  /** Notes that these commit points are now stored in Kafka. */
  markCommitted(offsets: readonly TopicPartitionOffset[]): void {
    for (const { topic, partition, offset } of offsets) this.#state(topic, partition).committed = BigInt(offset);
  }
}

/**
 * `promise`, or resolved early when `signal` aborts; either way the waiter is dropped (`drop`) and
 * the abort listener removed, so waiting leaves nothing behind on a long-lived signal.
 */
function untilAborted(promise: Promise<void>, signal: AbortSignal | undefined, drop: () => void): Promise<void> {
  if (!signal) return promise;
  const { promise: aborted, resolve } = Promise.withResolvers<void>();
  const onAbort = () => resolve();
  signal.addEventListener("abort", onAbort, { once: true });
  return Promise.race([promise, aborted]).finally(() => {
    signal.removeEventListener("abort", onAbort);
    drop();
  });
}
