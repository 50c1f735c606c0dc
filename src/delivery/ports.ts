/**
 * @module
 * The interfaces between delivery bookkeeping and a Kafka client: where messages come from (a
 * {@link Source}), where a job's outcome is written (a {@link Sink}, or with exactly-once a
 * {@link TransactionalSink} that commits records and offsets together), what happened to a job
 * ({@link Outcome}), and what a source tells when its partitions change hands (a
 * {@link RebalanceListener}). The task store is `state/table.ts`'s `Table`. Stages, metrics and
 * tracing depend on these, never on `kafka/`, which implements them with kafkajs; none of them
 * names a kafkajs type, so a second client could implement them too.
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
import type { Batch, Job, OutRecord, TopicPartition } from "../model.ts";
import type { Commit } from "./ledger.ts";
import type { TopicPartitionOffset } from "./offsets.ts";

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

/** What a source hands its batches and partition changes to. */
export interface SourceHandlers {
  /** Called for a batch before it is queued, so its offsets are known to be in flight; returns it as queued. */
  onBatch: (batch: Batch) => Batch;
  /** How many more messages of a partition may be taken in now; 0: it is paused. */
  room?: (topic: string, partition: number) => number;
  rebalance: RebalanceListener;
}

/** Where messages come from: a consumer group member's batches, paused per topic or partition, and its commits. */
export interface Source {
  /** The topics consumed now. */
  readonly topics: readonly string[];
  /** Whether it is a member of its group now. */
  readonly joined: boolean;
  /** Where batches and partition changes go: set once, before {@link start}. */
  attach(handlers: SourceHandlers): void;
  start(): Promise<void>;
  /** The batches, until {@link close}. */
  batches(): AsyncIterable<Batch>;
  /** Fetches only topics and partitions (as `partitionId`s) outside `paused` from now on. */
  setPaused(paused: ReadonlySet<string>): void;
  /** Stores offsets for the group; rejects when they did not reach the coordinator. */
  commit(offsets: TopicPartitionOffset[]): Promise<void>;
  /** Moves the fetch positions of `partitions` to their committed offsets as the coordinator has them now. */
  seekToCommitted(partitions: readonly TopicPartition[]): Promise<void>;
  /** Matches the subscriptions against the broker's topics again. */
  refresh(): Promise<void>;
  /** Stops fetching and ends {@link batches}; stays in the group for the final commits. */
  close(): Promise<void>;
  /** Leaves the group. */
  disconnect(): Promise<void>;
}

/** Exactly-once output: records wait on their jobs, and a commit writes them with the offsets that settle them. */
export interface TransactionalSink {
  /** The sink jobs write through: records are held for the transaction of their input partition. */
  sink(): Sink;
  /** One transaction per input partition: the records staged, then the offsets. Resolves with what it stored. */
  commit(commit: Commit): Promise<Commit>;
  /** After a join: take the assigned partitions' transactional ids over, fencing earlier holders. */
  claim(assigned: readonly TopicPartition[]): Promise<void>;
  close(): Promise<void>;
}
