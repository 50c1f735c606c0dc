/**
 * @module
 * Exactly-once output: replies and DLQ records are staged in memory and written, together with the
 * consumed offsets they settle, in Kafka transactions: each commit interval, one per input
 * partition, on that partition's own transactional producer (see src/kafka/partition_producers.ts).
 * A reader with `isolation.level=read_committed` sees each source message's outcome exactly once: a
 * crash before the commit aborts the records along with the offsets, and the messages are handled
 * again; a member that lost a partition is fenced by its new owner and cannot commit for it.
 *
 * A transaction refused because an output topic cannot be written (missing, or denied by an ACL)
 * is aborted and its part held: its records and offset go with that partition's next commits,
 * tried again as {@link OutputTopics} allows, while its pipelines pause. A new assignment drops
 * what is held: its messages are delivered again from the committed offsets.
 *
 * @example
 * ```ts
 * import type { Job } from "../model.ts";
 * import type { PartitionProducers } from "./partition_producers.ts";
 * import { fitting, TransactionalOutput } from "./transactions.ts";
 * const steps: string[] = [];
 * const step = (name: string) => () => (steps.push(name), Promise.resolve());
 * const transaction = { sendBatch: step("records"), sendOffsets: step("offset"), commit: step("commit") };
 * const producers = { // a stand-in: the transactional producer of each input partition
 *   claimed: () => Promise.resolve({ transaction: () => Promise.resolve(transaction) }),
 * } as unknown as PartitionProducers;
 * const output = new TransactionalOutput(producers, "g");
 * const job = { ctx: { pipeline: "orders" } } as Job;
 * const reply = { key: null, value: new TextEncoder().encode("{}"), headers: {} };
 * await output.sink().send("orders.events.responses", reply, job);
 * if (steps.length || job.staged?.length !== 1) throw new Error("staged on its job, not sent yet");
 * const offset = { topic: "orders.events", partition: 0, offset: "8" }; // the job's message was at 7
 * await output.commit({ offsets: [offset], records: job.staged!, parts: [{ offset, records: job.staged! }] });
 * if (steps.join() !== "records,offset,commit") throw new Error(`one transaction: ${steps}`);
 * const record = { key: null, value: new Uint8Array(600_000), headers: {} };
 * if (fitting([record, record], 1_048_588).length !== 2) throw new Error("two sends: one batch would be too large");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { TopicPartitionOffset } from "../delivery/offsets.ts";
import type { Commit } from "../delivery/ledger.ts";
import { errorMessage } from "../errors.ts";
import { isConcurrent, isFenced, type PartitionProducers } from "./partition_producers.ts";

const log = getLogger(["agentstream", "transactions"]);
import type { Sink, TransactionalSink } from "../delivery/ports.ts";
import { toKafkaMessage } from "./message.ts";
import { batchBytes, type RecordLimits } from "./record_limits.ts";
import { type OutRecord, partitionId, recordBytes, type StagedRecord } from "../model.ts";
import { type OutputTopics, type UnwritableReason, unwritableReason } from "./output_topics.ts";

/** A transaction refused because one of its topics cannot be written; it was aborted. */
class Unwritable extends Error {
  constructor(readonly topic: string, readonly reason: UnwritableReason, cause: unknown) {
    super(`cannot write to ${topic} (${reason}): ${errorMessage(cause)}`, { cause });
    this.name = "Unwritable";
  }
}

/** One input partition's part of a commit: its offset and the records of the messages it passes. */
type Part = Commit["parts"][number];

/** The error a record too large for its topic gets, as the broker would name it. */
export class RecordTooLarge extends Error {
  override name = "RecordTooLarge";
  readonly type = "MESSAGE_TOO_LARGE";
}

export class TransactionalOutput implements TransactionalSink {
  readonly #producers: PartitionProducers;
  readonly #groupId: string;
  readonly #limits: RecordLimits | undefined;
  readonly #onFenced: () => void;
  readonly #outputs: OutputTopics | undefined;
  /** Parts whose transaction a topic refused, by input partition, with the topic. */
  readonly #held = new Map<string, { part: Part; topic: string }>();

  /**
   * With `limits`, sends are split to fit the broker, and a record too large for its topic is
   * refused at once. `onFenced` hears of every partition's commit left to another member. With
   * `outputs`, a part refused for a topic that cannot be written is held instead of failing.
   */
  constructor(
    producers: PartitionProducers,
    groupId: string,
    limits?: RecordLimits,
    onFenced: () => void = () => {},
    outputs?: OutputTopics,
  ) {
    this.#producers = producers;
    this.#groupId = groupId;
    this.#limits = limits;
    this.#onFenced = onFenced;
    this.#outputs = outputs;
  }

  /**
   * The publish side: records wait on their job until its ack stages them in the ledger. A record
   * its topic can never take is refused here, while its job can still go to the DLQ instead.
   */
  sink(): Sink {
    const tooLarge = (error: unknown) => error instanceof RecordTooLarge;
    return {
      send: async (topic, record, job) => {
        const limit = await this.#limits?.of(topic);
        if (limit !== undefined && batchBytes([record]) > limit) {
          throw new RecordTooLarge(`${batchBytes([record])} bytes is more than ${topic} takes (${limit})`);
        }
        this.#outputs?.noteWriter(topic, job.ctx.pipeline);
        (job.staged ??= []).push({ topic, record });
      },
      isPermanent: tooLarge,
      isTooLarge: tooLarge,
    };
  }

  /**
   * Takes over the transactional ids of the partitions assigned now (see {@link PartitionProducers.claim}).
   * What was held is dropped: its messages come again from the committed offsets.
   */
  claim(assigned: readonly { topic: string; partition: number }[]): Promise<void> {
    for (const { topic } of this.#held.values()) {
      this.#outputs?.hold(topic, false);
      this.#outputs?.forget(topic);
    }
    this.#held.clear();
    return this.#producers.claim(assigned);
  }

  /**
   * `commit`'s parts, each after what is held for its partition (records first, the later offset),
   * and the held parts of partitions it has nothing for; those that are to wait (their topic is
   * refused and not yet due a try) are left held.
   */
  #parts(commit: Commit): Part[] {
    const parts = new Map<string, Part>();
    for (const part of commit.parts) parts.set(partitionId(part.offset.topic, part.offset.partition), part);
    for (const [id, { part: held, topic }] of this.#held) {
      const part = parts.get(id);
      const merged = part ? { offset: part.offset, records: [...held.records, ...part.records] } : held;
      if (this.#outputs?.probeDue(topic) ?? true) {
        this.#held.delete(id);
        parts.set(id, merged);
      } else {
        this.#held.set(id, { part: merged, topic });
        parts.delete(id);
      }
    }
    return [...parts.values()];
  }

  /** Holds `part`, refused for `topic`, for its partition's next commit. */
  #hold(part: Part, topic: string): void {
    this.#held.set(partitionId(part.offset.topic, part.offset.partition), { part, topic });
  }

  /** Tells the output topics which topics have parts held now (their pipelines pause while they do). */
  #report(before: ReadonlySet<string>): void {
    const now = new Set([...this.#held.values()].map(({ topic }) => topic));
    for (const topic of now) if (!before.has(topic)) this.#outputs?.hold(topic, true);
    for (const topic of before) if (!now.has(topic)) this.#outputs?.hold(topic, false);
  }

  /**
   * Commits `commit`: one transaction per input partition, holding its records and its offset, on
   * that partition's producer. A partition whose producer was fenced (or that this member has not
   * claimed) belongs to another member now, which handles its messages again: it is left to it,
   * and left out of what this returns, the offsets committed. A transaction that fails before its
   * EndTxn is aborted and sent again (three tries); any other failure throws.
   */
  async commit(commit: Commit): Promise<Commit> {
    const failures: unknown[] = [];
    const left = new Set<TopicPartitionOffset>();
    const heldBefore = new Set([...this.#held.values()].map(({ topic }) => topic));
    const parts = this.#parts(commit);
    await Promise.all(parts.map(async (part) => {
      const { offset, records } = part;
      try {
        await this.#commitPart(offset, records);
        for (const topic of new Set(records.map((r) => r.topic))) this.#outputs?.written(topic);
      } catch (error) {
        if (error instanceof Unwritable && this.#outputs) {
          // Nothing was written: held, and tried again with the partition's next commits.
          this.#outputs.refuse(error.topic, error.reason);
          this.#hold(part, error.topic);
          return;
        }
        // Still concurrent after the retries (or at EndTxn, which cannot be sent again): a new owner's
        // claim is aborting this transaction. Either way it did not commit; the producer is closed.
        // An EndTxn whose outcome is unknown is left the same way: the broker answers one that meets
        // a new owner's claim (its epoch fence) with UNKNOWN_SERVER_ERROR. Whoever owns the partition
        // next reads its committed offset, so it is handled once whether it committed or not; if no
        // rebalance follows, `onFenced` restarts the member.
        if (!isFenced(error) && !isConcurrent(error) && !(error instanceof OutcomeUnknown)) {
          return void failures.push(error);
        }
        left.add(offset);
        this.#onFenced();
        const why = error instanceof OutcomeUnknown
          ? "{topic}/{partition}: its transaction's commit failed with an unknown outcome; left to the group, which reads what is committed ({error})"
          : "{topic}/{partition} belongs to another member now: its transaction is left to it ({error})";
        log.warn(why, { topic: offset.topic, partition: offset.partition, error: errorMessage(error) });
        await this.#producers.release(offset.topic, offset.partition);
      }
    }));
    this.#report(heldBefore);
    if (failures.length) throw failures[0];
    if (!left.size && !heldBefore.size && !this.#held.size) return commit;
    // What was held is not committed: the ledger takes its partitions' offsets again next time.
    const done = parts.filter((part) => !left.has(part.offset) && !this.#isHeld(part));
    return { offsets: done.map((p) => p.offset), records: done.flatMap((p) => p.records), parts: done };
  }

  #isHeld(part: Part): boolean {
    return this.#held.get(partitionId(part.offset.topic, part.offset.partition))?.part === part;
  }

  /**
   * One partition's transaction. Records go out in sends that each fit their topic's limit: kafkajs
   * puts one send's records for a partition in one record batch, which the broker refuses past
   * `max.message.bytes`.
   */
  async #commitPart(offset: TopicPartitionOffset, records: readonly StagedRecord[]): Promise<void> {
    const producer = await this.#producers.claimed(offset.topic, offset.partition);
    for (let attempt = 1;; attempt++) {
      const transaction = await producer.transaction();
      let ending = false;
      try {
        for (const [topic, list] of Map.groupBy(records, (r) => r.topic)) {
          const limit = (await this.#limits?.of(topic)) ?? Number.POSITIVE_INFINITY;
          for (const chunk of fitting(list.map((r) => r.record), limit)) {
            await transaction.sendBatch({ acks: -1, topicMessages: [{ topic, messages: chunk.map(toKafkaMessage) }] })
              .catch((error) => {
                const reason = unwritableReason(error);
                throw reason ? new Unwritable(topic, reason, error) : error;
              });
          }
        }
        await whileConcurrent(() =>
          transaction.sendOffsets({
            consumerGroupId: this.#groupId,
            topics: [{ topic: offset.topic, partitions: [{ partition: offset.partition, offset: offset.offset }] }],
          })
        );
        ending = true;
        await transaction.commit();
        return;
      } catch (error) {
        // Aborted, the transaction left nothing behind, and its records and offset are still here:
        // it can be sent again. kafkajs refuses to abort after a failed EndTxn, whose outcome is
        // unknown (it may have committed): that, a fence, or a third failure is the caller's.
        const aborted = await transaction.abort().then(() => true, () => false);
        if (!aborted && ending && !isFenced(error) && !isConcurrent(error)) throw new OutcomeUnknown(error);
        // A topic that cannot be written is not tried again here: the part is held (see commit).
        if (!aborted || attempt >= 3 || isFenced(error) || isConcurrent(error) || error instanceof Unwritable) {
          throw error;
        }
        log.warn("a transaction for {topic}/{partition} failed and was aborted: sending it again ({error})", {
          topic: offset.topic,
          partition: offset.partition,
          error: errorMessage(error),
        });
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  /** Closes every partition's producer. */
  close(): Promise<void> {
    return this.#producers.close();
  }
}

/** A transaction's EndTxn failed and could not be aborted: it may or may not have committed. */
class OutcomeUnknown extends Error {
  constructor(cause: unknown) {
    super(`the transaction's commit failed, with an unknown outcome: ${errorMessage(cause)}`, { cause });
    this.name = "OutcomeUnknown";
  }
}

/**
 * Runs `step` again while the coordinator answers CONCURRENT_TRANSACTIONS (it is writing the markers
 * of the last transaction), for about 10 s: as the Java client does, and kafkajs does not for
 * AddOffsetsToTxn. A step that fails so changes nothing in kafkajs's transaction state.
 */
async function whileConcurrent(step: () => Promise<void>): Promise<void> {
  for (let delay = 50, waited = 0;; waited += delay, delay = Math.min(2 * delay, 1_000)) {
    try {
      return await step();
    } catch (error) {
      if (!isConcurrent(error) || waited >= 10_000) throw error;
      log.debug("the transaction coordinator is busy with this id: sending again in {delay} ms", { delay });
      await new Promise((resolve) => setTimeout(resolve, delay));
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
