/**
 * @module
 * Produces records in batches: records sent while a batch is on its way to the broker wait and go
 * together in the next one, one batch at a time, so order is kept and a busy bridge makes few large
 * produce requests instead of one per reply. Each `send` resolves once the broker has acknowledged
 * its record (acks=all). A batch that fails for a reason that may pass (the broker restarting) is
 * sent again, with growing pauses, for up to `retryForMs`; only then does its `send`s reject.
 *
 * A topic that cannot be written (`isUnwritable`: missing, or denied by an ACL) fails only its own
 * records, at once: a batch it spoils is sent again topic by topic, and from then on its records
 * go in batches of their own beside the others, until one is written, so they never slow the rest.
 * kafkajs asks for the metadata of every topic its producer ever wrote, and fails every send once
 * one of them is deleted: a topic said to be missing that exists (`exists`) means this, and the
 * producer is replaced (`renew`, at most every 10 s) and the send tried again.
 *
 * @example
 * ```ts
 * import type { Producer } from "kafkajs";
 * import { BatchingSender } from "./batching_sender.ts";
 * const calls: number[] = [];
 * const producer = { sendBatch: ({ topicMessages }: { topicMessages: { messages: unknown[] }[] }) => {
 *   calls.push(topicMessages.flatMap((t) => t.messages).length);
 *   return Promise.resolve([]);
 * } } as unknown as Producer;
 * const sender = new BatchingSender(producer, () => false);
 * await Promise.all(["a", "b", "c"].map((value) => sender.send("orders.events.responses", { key: "K-1", value })));
 * if (calls.join() !== "3") throw new Error(`three records, one produce request: ${calls}`);
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { Message, Producer } from "kafkajs";

const log = getLogger(["agentstream", "publish"]);

interface Pending {
  topic: string;
  message: Message;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** The shortest time between two replacements of the producer. */
const RENEW_EVERY_MS = 10_000;

export interface BatchingSenderOptions {
  maxBatch?: number;
  retryForMs?: number;
  /** Whether an error says a topic cannot be written (missing, or denied): its records fail at once. */
  isUnwritable?: (error: unknown) => boolean;
  /** Whether an error says a topic does not exist. */
  isMissing?: (error: unknown) => boolean;
  /** Whether `topic` exists (and may be described), as the brokers say now. */
  exists?: (topic: string) => Promise<boolean>;
  /** A new, connected producer to use from now on; the old one is the caller's to close. */
  renew?: () => Promise<Producer>;
}

export class BatchingSender {
  #producer: Producer;
  readonly #isMissing: (error: unknown) => boolean;
  readonly #exists: ((topic: string) => Promise<boolean>) | undefined;
  readonly #renew: (() => Promise<Producer>) | undefined;
  #renewedAt = 0;
  readonly #isPermanent: (error: unknown) => boolean;
  readonly #isUnwritable: (error: unknown) => boolean;
  readonly #maxBatch: number;
  /** Topics whose last write failed as unwritable: sent on their own. */
  readonly #suspect = new Set<string>();
  #pending: Pending[] = [];
  #flushing = false;

  readonly #retryForMs: number;

  constructor(
    producer: Producer,
    isPermanent: (error: unknown) => boolean,
    {
      maxBatch = 1_000,
      retryForMs = 120_000,
      isUnwritable = () => false,
      isMissing = () => false,
      exists,
      renew,
    }: BatchingSenderOptions = {},
  ) {
    this.#producer = producer;
    this.#isPermanent = isPermanent;
    this.#isUnwritable = isUnwritable;
    this.#isMissing = isMissing;
    this.#exists = exists;
    this.#renew = renew;
    this.#maxBatch = maxBatch;
    this.#retryForMs = retryForMs;
  }

  /** Queues one record; resolves when the broker has it, rejects with the broker's error. */
  send(topic: string, message: Message): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ topic, message, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        // Let the records of this turn of the event loop join the first batch.
        queueMicrotask(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    while (this.#pending.length) {
      const taken = Map.groupBy(this.#pending.splice(0, this.#maxBatch), (item) => item.topic);
      // Records of a topic that could not be written go apart, so that its failure costs the others nothing.
      for (const [topic, items] of taken) {
        if (this.#suspect.has(topic)) void this.#sendTopic(items);
      }
      const byTopic = [...taken].filter(([topic]) => !this.#suspect.has(topic));
      if (!byTopic.length) continue;
      const batch = byTopic.flatMap(([, items]) => items);
      const used = this.#producer;
      try {
        await this.#sendPatiently(batch);
        for (const item of batch) item.resolve();
      } catch (error) {
        if (this.#isUnwritable(error) && (byTopic.length > 1 || await this.#poisoned(batch[0].topic, error, used))) {
          // Which topic it was the error does not say: each topic on its own.
          await Promise.all(byTopic.map(([, items]) => this.#sendTopic(items)));
        } else await this.#failed(batch, error);
      }
    }
    this.#flushing = false;
  }

  /** Sends one topic's records as a batch of their own, noting whether the topic can be written. */
  async #sendTopic(items: Pending[]): Promise<void> {
    const topic = items[0].topic;
    const used = this.#producer;
    try {
      await this.#sendPatiently(items).catch(async (error) => {
        if (!await this.#poisoned(topic, error, used)) throw error;
        await this.#sendPatiently(items);
      });
      this.#suspect.delete(topic);
      for (const item of items) item.resolve();
    } catch (error) {
      await this.#failed(items, error);
    }
  }

  /**
   * `items` (of one topic, when the error is that it cannot be written) failed with `error`: one
   * record the broker can never take must not fail the others, so they go one by one; else each
   * fails with it.
   */
  async #failed(items: Pending[], error: unknown): Promise<void> {
    if (this.#isUnwritable(error)) this.#suspect.add(items[0].topic);
    if (items.length > 1 && this.#isPermanent(error)) {
      for (const item of items) await this.#sendBatch([item]).then(item.resolve, item.reject);
    } else {
      for (const item of items) item.reject(error);
    }
  }

  /**
   * Whether `error`, from a send on `used`, said `topic` is missing while it exists: the producer's
   * metadata is spoilt by another topic it wrote once, since deleted. Then the producer is replaced
   * (or was, since that send) and the send may be tried again (true).
   */
  async #poisoned(topic: string, error: unknown, used: Producer): Promise<boolean> {
    if (!this.#renew || !this.#exists || !this.#isMissing(error)) return false;
    // Replaced meanwhile (for another topic's send): try the new one.
    if (this.#producer !== used) return true;
    if (Date.now() - this.#renewedAt < RENEW_EVERY_MS || !await this.#exists(topic)) return false;
    if (this.#producer !== used) return true;
    this.#renewedAt = Date.now();
    log.warn(
      "{topic} exists, yet the producer cannot write it: another topic it wrote was deleted; replacing the producer",
      {
        topic,
      },
    );
    this.#producer = await this.#renew();
    return true;
  }

  /** Sends a batch, again and again while the failure may pass and `retryForMs` has not run out. */
  async #sendPatiently(batch: Pending[]): Promise<void> {
    const deadline = Date.now() + this.#retryForMs;
    for (let pause = 1_000;; pause = Math.min(pause * 2, 10_000)) {
      try {
        await this.#sendBatch(batch);
        return;
      } catch (error) {
        // An unwritable topic is not tried again here: its records wait where they are sent from.
        if (this.#isPermanent(error) || this.#isUnwritable(error) || Date.now() + pause > deadline) throw error;
        log.warn("cannot write to Kafka ({error}); trying again in {pause} ms", { error: String(error), pause });
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  #sendBatch(batch: Pending[]): Promise<unknown> {
    const byTopic = new Map<string, Message[]>();
    for (const { topic, message } of batch) {
      const list = byTopic.get(topic);
      if (list) list.push(message);
      else byTopic.set(topic, [message]);
    }
    return this.#producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
  }
}
