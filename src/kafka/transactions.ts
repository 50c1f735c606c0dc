/**
 * @module
 * Exactly-once output: replies and DLQ records are staged in memory and written, together with the
 * consumed offsets they settle, in one Kafka transaction per commit interval. A reader with
 * `isolation.level=read_committed` sees each source message's outcome exactly once: a crash before
 * the commit aborts the records along with the offsets, and the messages are handled again.
 *
 * @example
 * ```ts
 * import { TransactionalOutput } from "./transactions.ts";
 * // const output = new TransactionalOutput(producer, "my-group");
 * // publish(jobs, output.publishContext())                 // records wait on their jobs
 * // const commit = ledger.take();                           // the ledger stages them with their offsets
 * // await output.commit(commit.records, commit.offsets);    // one transaction
 * ```
 */
import type { Producer } from "kafkajs";
import type { TopicPartitionOffset } from "../offsets.ts";
import type { StagedRecord } from "../ledger.ts";
import type { PublishContext } from "../stages/publish.ts";
import { toKafkaMessage } from "./message.ts";
import { batchBytes, recordBytes, type RecordLimits } from "./record_limits.ts";
import type { OutRecord } from "../model.ts";

/** The error a record too large for its topic gets, as the broker would name it. */
export class RecordTooLarge extends Error {
  override name = "RecordTooLarge";
  readonly type = "MESSAGE_TOO_LARGE";
}

export class TransactionalOutput {
  readonly #producer: Producer;
  readonly #groupId: string;
  readonly #limits: RecordLimits | undefined;

  /** With `limits`, sends are split to fit the broker, and a record too large for its topic is refused at once. */
  constructor(producer: Producer, groupId: string, limits?: RecordLimits) {
    this.#producer = producer;
    this.#groupId = groupId;
    this.#limits = limits;
  }

  /**
   * The publish side: records wait on their job until its ack stages them in the ledger. A record
   * its topic can never take is refused here, while its job can still go to the DLQ instead.
   */
  publishContext(): PublishContext {
    const tooLarge = (error: unknown) => error instanceof RecordTooLarge;
    return {
      send: async (topic, record, job) => {
        const limit = await this.#limits?.of(topic);
        if (limit !== undefined && batchBytes([record]) > limit) {
          throw new RecordTooLarge(`${batchBytes([record])} bytes is more than ${topic} takes (${limit})`);
        }
        (job.staged ??= []).push({ topic, record });
      },
      isPermanent: tooLarge,
      isTooLarge: tooLarge,
    };
  }

  /**
   * Writes `records` and commits `offsets` in one transaction; on failure aborts it and throws.
   * Records go out in sends that each fit their topic's limit: kafkajs puts one call's records for a
   * partition in one record batch, which the broker refuses past `max.message.bytes`.
   */
  async commit(records: readonly StagedRecord[], offsets: TopicPartitionOffset[]): Promise<void> {
    if (!records.length && !offsets.length) return;
    const transaction = await this.#producer.transaction();
    try {
      for (const [topic, list] of Map.groupBy(records, (r) => r.topic)) {
        const limit = (await this.#limits?.of(topic)) ?? Number.POSITIVE_INFINITY;
        for (const chunk of fitting(list.map((r) => r.record), limit)) {
          await transaction.sendBatch({ acks: -1, topicMessages: [{ topic, messages: chunk.map(toKafkaMessage) }] });
        }
      }
      if (offsets.length) {
        const byTopic = Map.groupBy(offsets, (o) => o.topic);
        await transaction.sendOffsets({
          consumerGroupId: this.#groupId,
          topics: [...byTopic].map(([topic, list]) => ({
            topic,
            partitions: list.map(({ partition, offset }) => ({ partition, offset })),
          })),
        });
      }
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => {});
      throw error;
    }
  }
}

/** `records` in runs whose record batch stays within `limit` bytes (a record alone over it stays alone). */
export function fitting(records: readonly OutRecord[], limit: number): OutRecord[][] {
  const chunks: OutRecord[][] = [];
  let chunk: OutRecord[] = [];
  let size = batchBytes([]);
  for (const record of records) {
    const bytes = recordBytes(record);
    if (chunk.length && size + bytes > limit) {
      chunks.push(chunk);
      chunk = [];
      size = batchBytes([]);
    }
    chunk.push(record);
    size += bytes;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}
