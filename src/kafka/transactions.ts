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
import type { Message, Producer } from "kafkajs";
import type { TopicPartitionOffset } from "../offsets.ts";
import type { StagedRecord } from "../ledger.ts";
import type { PublishContext } from "../stages/publish.ts";
import { toKafkaMessage } from "./message.ts";

export class TransactionalOutput {
  readonly #producer: Producer;
  readonly #groupId: string;

  constructor(producer: Producer, groupId: string) {
    this.#producer = producer;
    this.#groupId = groupId;
  }

  /** The publish side: records wait on their job until its ack stages them in the ledger. */
  publishContext(): PublishContext {
    return {
      send: (topic, record, job) => {
        (job.staged ??= []).push({ topic, record });
        return Promise.resolve();
      },
    };
  }

  /** Writes `records` and commits `offsets` in one transaction; on failure aborts it and throws. */
  async commit(records: readonly StagedRecord[], offsets: TopicPartitionOffset[]): Promise<void> {
    if (!records.length && !offsets.length) return;
    const transaction = await this.#producer.transaction();
    try {
      if (records.length) {
        const byTopic = new Map<string, Message[]>();
        for (const { topic, record } of records) {
          const list = byTopic.get(topic);
          if (list) list.push(toKafkaMessage(record));
          else byTopic.set(topic, [toKafkaMessage(record)]);
        }
        await transaction.sendBatch({
          acks: -1,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
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
