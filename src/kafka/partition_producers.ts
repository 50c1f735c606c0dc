/**
 * @module
 * One transactional producer per input partition, with a transactional id derived from the group,
 * the topic and the partition: how Kafka Streams kept exactly-once before KIP-447, which kafkajs
 * 2.2.4 lacks (its `sendOffsets` carries no group generation). Whoever owns a partition now
 * initialises that id, and the broker then fences every earlier holder of it and aborts its open
 * transaction: a member that was frozen past its session timeout, or a pod that a rolling restart
 * replaced under another host name, can no longer commit replies for a partition it lost.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { transactionalIdFor } from "./partition_producers.ts";
 * assert.equal(transactionalIdFor("support", "orders", 3), "support-orders-3");
 * // With hyphens in the names, hyphens alone would be ambiguous: "a" + "b-c" is not "a-b" + "c".
 * assert.notEqual(transactionalIdFor("a", "b-c", 0), transactionalIdFor("a-b", "c", 0));
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { Kafka, Producer } from "kafkajs";
import { Partitioners } from "kafkajs";
import { errorMessage } from "../errors.ts";
import { partitionId } from "../model.ts";

const log = getLogger(["agentstream", "transactions"]);

/**
 * The transactional id of one input partition: the same on every process of the group, and never
 * the same for two partitions. Names without hyphens keep the `prefix-topic-partition` of earlier
 * versions (a rolling upgrade still fences what the old version left open); where the prefix or the
 * topic has a hyphen, `/` separates them, which no topic name can hold, so the id reads back one
 * way only (split from the right). Such an id never equals one of the first form, which ends `-N`.
 * (The default prefix, the group id `archestra-bridge`, has a hyphen: see legacyTransactionalIdFor.)
 */
export function transactionalIdFor(prefix: string, topic: string, partition: number): string {
  const legacy = legacyTransactionalIdFor(prefix, topic, partition);
  return prefix.includes("-") || topic.includes("-") ? `${prefix}/${topic}/${partition}` : legacy;
}

/**
 * The id earlier versions used for the partition (`prefix-topic-partition`, ambiguous with hyphens).
 * Where it differs from today's, a claim takes it too, so that a rolling upgrade still fences a
 * replica of the earlier version and ends its open transaction (keep this for a release or two).
 */
export function legacyTransactionalIdFor(prefix: string, topic: string, partition: number): string {
  return `${prefix}-${topic}-${partition}`;
}

/** A commit for a partition this process has not claimed: it belongs to another member (or did meanwhile). */
export class NotClaimed extends Error {
  override name = "NotClaimed";
}

/**
 * Whether `error` says another producer took this transactional id over (this one is fenced):
 * INVALID_PRODUCER_EPOCH, or PRODUCER_FENCED (code 90, which kafkajs 2.2.4 does not name), found
 * on the error or its causes (kafkajs wraps it in KafkaJSNonRetriableError).
 */
export function isFenced(error: unknown): boolean {
  return error instanceof NotClaimed ||
    hasCause(error, (e) => e.type === "INVALID_PRODUCER_EPOCH" || e.type === "PRODUCER_FENCED" || e.code === 90);
}

/**
 * Whether `error` is CONCURRENT_TRANSACTIONS (code 51): the coordinator is still completing a
 * transaction of this id, our last one or one that a new owner's claim is aborting. kafkajs 2.2.4
 * retries it nowhere but in InitProducerId.
 */
export function isConcurrent(error: unknown): boolean {
  return hasCause(error, (e) => e.type === "CONCURRENT_TRANSACTIONS" || e.code === 51);
}

type KafkaError = { type?: string; code?: number; cause?: unknown };

/** Whether `error` or one of its causes passes `test` (kafkajs wraps errors in others). */
function hasCause(error: unknown, test: (e: KafkaError) => boolean): boolean {
  for (let e = error as KafkaError | undefined; e; e = e.cause as KafkaError | undefined) {
    if (test(e)) return true;
  }
  return false;
}

export class PartitionProducers {
  readonly #kafka: Kafka;
  readonly #prefix: string;
  readonly #producers = new Map<string, Promise<Producer>>();

  /** `prefix` is the group id, or KAFKA_TRANSACTIONAL_ID where set. */
  constructor(kafka: Kafka, prefix: string) {
    this.#kafka = kafka;
    this.#prefix = prefix;
  }

  /** Producers open now (one per partition this process owns or has committed for). */
  get size(): number {
    return this.#producers.size;
  }

  /**
   * The producer of a partition this process claimed. Never made here: a member thawed after its
   * partitions moved would take their ids back from the new owner.
   */
  claimed(topic: string, partition: number): Promise<Producer> {
    const producer = this.#producers.get(partitionId(topic, partition));
    if (!producer) return Promise.reject(new NotClaimed(`${topic}/${partition} is not claimed by this member`));
    return producer;
  }

  /** The producer of one input partition, connected (which fences any earlier holder of its id). */
  #connect(topic: string, partition: number): Promise<Producer> {
    const id = partitionId(topic, partition);
    let producer = this.#producers.get(id);
    if (!producer) {
      const transactionalId = transactionalIdFor(this.#prefix, topic, partition);
      const legacy = legacyTransactionalIdFor(this.#prefix, topic, partition);
      const created = this.#kafka.producer({
        transactionalId,
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: true,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      // kafkajs's connect() initialises only its idempotent side; the transactional id is taken
      // (InitProducerId, which fences earlier holders and ends their open transaction) on the first
      // transaction. An empty one, aborted, takes it now and sends nothing else.
      producer = (legacy === transactionalId ? Promise.resolve() : this.#fence(legacy))
        .then(() => created.connect())
        .then(() => created.transaction())
        .then((transaction) => transaction.abort())
        .then(() => created);
      producer.catch(() => {
        this.#producers.delete(id);
        void created.disconnect().catch(() => {});
      });
      this.#producers.set(id, producer);
    }
    return producer;
  }

  /** Takes a transactional id and lets it go: its earlier holder is fenced, its open transaction ended. */
  async #fence(transactionalId: string): Promise<void> {
    const producer = this.#kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      await (await producer.transaction()).abort();
    } finally {
      await producer.disconnect().catch(() => {});
    }
  }

  /**
   * Takes the partitions `assigned` over now, with producers made afresh (one kept from before may
   * have been fenced meanwhile): connecting them fences every earlier holder of their ids and waits
   * for its open transaction to end. Producers of partitions no longer assigned are closed.
   */
  async claim(assigned: readonly { topic: string; partition: number }[]): Promise<void> {
    await this.close();
    await Promise.all(assigned.map(({ topic, partition }) => this.#connect(topic, partition)));
  }

  /** Closes one partition's producer (fenced, or the partition is gone). */
  async release(topic: string, partition: number): Promise<void> {
    await this.#close(partitionId(topic, partition));
  }

  async #close(id: string): Promise<void> {
    const producer = this.#producers.get(id);
    this.#producers.delete(id);
    try {
      await (await producer)?.disconnect();
    } catch (error) {
      log.debug("closing a transactional producer: {error}", { error: errorMessage(error) });
    }
  }

  /** Closes every producer. */
  async close(): Promise<void> {
    await Promise.all([...this.#producers.keys()].map((id) => this.#close(id)));
  }
}
