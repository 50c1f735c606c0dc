/**
 * @module
 * The interfaces between delivery bookkeeping and the outside: where a job's outcome is written (a
 * {@link Sink}: the Kafka publisher, or with exactly-once the transactional output), what happened
 * to a job ({@link Outcome}), and what a source tells when its partitions change hands (a
 * {@link RebalanceListener}). Stages, metrics and tracing depend on these, never on `kafka/`, which
 * implements and calls them.
 *
 * @example
 * ```ts
 * import type { Outcome, Sink } from "./ports.ts";
 * const written: string[] = [];
 * const sink: Sink = { send: (topic) => { written.push(topic); return Promise.resolve(); } };
 * const outcome: Outcome = "replied";
 * if (outcome !== "replied" || typeof sink.send !== "function") throw new Error("unexpected");
 * ```
 */
import type { Job, OutRecord, TopicPartition } from "../model.ts";

/** Where publish writes the records of a job's outcome: the Kafka publisher, or with exactly-once the transactional output. */
export interface Sink {
  /**
   * Produces one record of `job` and resolves once the broker has acknowledged it (acks=all), or,
   * with exactly-once delivery, once it is staged for the job's transaction. Rejects with
   * {@link Abandoned} when it waited for its topic until the job went stale or the bridge stopped.
   */
  send(topic: string, record: OutRecord, job: Job): Promise<void>;
  /** Whether a send error can never succeed (e.g. record too large): the job goes to the DLQ. */
  isPermanent?(error: unknown): boolean;
  /** Whether a send error says the record is over its topic's size limit (its value can be cut). */
  isTooLarge?(error: unknown): boolean;
  /** Sends in flight at once. */
  concurrency?: number;
}

/**
 * What happened to a job. `dropped`: its DLQ record was refused even with its value cut, so
 * nothing was written; it is logged and counted, and its offset committed, so the bridge goes on.
 */
export type Outcome = "replied" | "dead-lettered" | "skipped" | "abandoned" | "dropped";

/** A change of the partitions a source hands out: see {@link RebalanceListener}. */
export interface PartitionChange {
  /**
   * What happened: the group began to rebalance, this member joined it, the consumer crashed (and
   * restarts), it subscribes again (new topics), or it moved its fetch positions to the committed
   * offsets (after an exactly-once claim).
   */
  readonly kind: "rebalance" | "join" | "crash" | "resubscribe" | "seek";
  /** The same in words, for logs. */
  readonly cause: string;
  /** Every partition owned before: all are handed out again from their committed offsets. */
  readonly revoked: readonly TopicPartition[];
  /** After a join: the partitions owned now (unknown until the join, e.g. while a rebalance begins). */
  readonly assigned?: readonly TopicPartition[];
}

/**
 * The one place partition lifecycle is handled. A source calls it, synchronously and before it
 * fetches again, whenever it will hand partitions out again from their committed offsets (a
 * rebalance, a rejoin, a crash and restart, a new subscription), and before it subscribes again.
 */
export interface RebalanceListener {
  partitionsChanged(change: PartitionChange): void;
  /** Before the source subscribes again, with fetching paused: resolve once what it handed out is committed. */
  drain(): Promise<void>;
}
