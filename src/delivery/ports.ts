/**
 * @module
 * The interfaces delivery bookkeeping asks of the outside: where a job's outcome is written (a
 * {@link Sink}: the Kafka publisher, or with exactly-once the transactional output) and what
 * happened to a job ({@link Outcome}). Stages, metrics and tracing depend on these, never on
 * `kafka/`, which implements them.
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
import type { Job, OutRecord } from "../model.ts";

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
