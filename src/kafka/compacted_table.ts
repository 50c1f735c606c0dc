/**
 * @module
 * A small table kept in a compacted Kafka topic (default `__agentstream.tasks`), shared by every
 * replica and kept across restarts: the agent tasks still running for a message, and the
 * conversation (contextId) an agent gave each Kafka key. Keys are prefixed with the consumer group,
 * so groups sharing the topic keep to their own entries; a delete writes a tombstone.
 *
 * Every bridge reads the whole topic at start-up and then follows it, so an entry written by a
 * group member that died is known to the member that takes over its partitions.
 *
 * @example
 * ```ts
 * import type { Kafka, Message } from "kafkajs";
 * import { KafkaTable } from "./compacted_table.ts";
 * const written: Message[] = [];
 * const kafka = { // a stand-in: the producer a write needs (start() would read the topic with a consumer)
 *   producer: () => ({ send: ({ messages }: { messages: Message[] }) => (written.push(...messages), Promise.resolve([])) }),
 *   consumer: () => ({}),
 * } as unknown as Kafka;
 * const table = new KafkaTable({ kafka, topic: "__agentstream.tasks", groupId: "g" });
 * await table.set("K-1", { taskId: "t-1" }); // durable once the broker has it
 * if ((table.get("K-1") as { taskId: string }).taskId !== "t-1") throw new Error("read back");
 * table.delete("K-1");
 * if (written.map((m) => `${m.key}=${m.value}`).join() !== 'g/K-1={"taskId":"t-1"},g/K-1=null') throw new Error("a tombstone");
 * ```
 */
import { Buffer } from "node:buffer";
import { getLogger } from "@logtape/logtape";
import { type Admin, type Consumer, type Kafka, Partitioners, type Producer } from "kafkajs";
import { errorMessage } from "../errors.ts";
import type { Table } from "../state/table.ts";
import { caughtUp, logEnds } from "./read_to_end.ts";

const log = getLogger(["agentstream", "table"]);

export interface KafkaTableOptions {
  kafka: Kafka;
  topic: string;
  /** The bridge's consumer group: entries of other groups are theirs. */
  groupId: string;
}

export class KafkaTable implements Table {
  readonly #options: KafkaTableOptions;
  readonly #entries = new Map<string, unknown>();
  readonly #producer: Producer;
  readonly #consumer: Consumer;
  readonly #readerGroup = `agentstream-tasks-${crypto.randomUUID()}`;
  /** Tombstones on their way: a stop waits for them. */
  readonly #clearing = new Set<Promise<void>>();
  #syncing: Promise<void> | undefined;
  /** Asks where the topic ends, for sync(); connected from start() to stop(). */
  #admin: Admin | undefined;
  /** The next offset to read, per partition, and who waits to have read to a point. */
  readonly #read = new Map<number, bigint>();
  #waiters: { ends: Map<number, bigint>; resolve: () => void }[] = [];

  constructor(options: KafkaTableOptions) {
    this.#options = options;
    this.#producer = options.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    this.#consumer = options.kafka.consumer({ groupId: this.#readerGroup, maxWaitTimeInMs: 500 });
  }

  #key(key: string): string {
    return `${this.#options.groupId}/${key}`;
  }

  /** Creates the topic if need be, reads it to its end, and keeps following it. */
  async start(): Promise<void> {
    const { kafka, topic } = this.#options;
    const admin = kafka.admin();
    let ends: Map<number, bigint>;
    await admin.connect();
    try {
      if (!(await admin.listTopics()).includes(topic)) {
        await admin.createTopics({
          topics: [{ topic, numPartitions: 1, configEntries: [{ name: "cleanup.policy", value: "compact" }] }],
          waitForLeaders: true,
        }).catch((error) => log.debug("creating {topic}: {error}", { topic, error: errorMessage(error) }));
      }
      ({ ends } = await logEnds(admin, topic));
    } finally {
      await admin.disconnect();
    }
    const read = caughtUp(this.#consumer, topic, ends);
    this.#consumer.on(this.#consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.topic !== topic) return;
      this.#read.set(payload.partition, BigInt(payload.lastOffset) + 1n);
      this.#waiters = this.#waiters.filter((waiter) => !this.#reached(waiter.ends) || (waiter.resolve(), false));
    });
    const prefix = `${this.#options.groupId}/`;
    await Promise.all([this.#producer.connect(), this.#consumer.connect()]);
    await this.#consumer.subscribe({ topics: [topic], fromBeginning: true });
    await this.#consumer.run({
      eachMessage: ({ message }) => {
        const key = message.key?.toString() ?? "";
        if (!key.startsWith(prefix)) return Promise.resolve();
        const own = key.slice(prefix.length);
        if (message.value === null) this.#entries.delete(own);
        else {
          try {
            this.#entries.set(own, JSON.parse(message.value.toString()));
          } catch { /* not ours to read */ }
        }
        return Promise.resolve();
      },
    });
    // A reader that cannot read (its group not authorised, say) must not hang the start.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`could not read ${topic} within 60 s`)), 60_000);
    });
    try {
      await Promise.race([read, timeout]);
    } finally {
      clearTimeout(timer);
    }
    log.debug("{count} entries from earlier runs in {topic}", { count: this.#entries.size, topic });
    this.#admin = kafka.admin();
    await this.#admin.connect();
  }

  get(key: string): unknown {
    return this.#entries.get(key);
  }

  entries(prefix: string): [string, unknown][] {
    return [...this.#entries].filter(([key]) => key.startsWith(prefix));
  }

  /**
   * Reads the topic up to where it ends now. Calls made meanwhile share one read; past 10 s, or
   * when the broker cannot say where it ends, what is known will do (and is logged).
   */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().catch((error) => {
      log.warn("could not read {topic} to its end: {error}", {
        topic: this.#options.topic,
        error: errorMessage(error),
      });
    }).finally(() => this.#syncing = undefined);
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    if (!this.#admin) return;
    const { ends } = await logEnds(this.#admin, this.#options.topic);
    if (this.#reached(ends)) return;
    const { promise, resolve } = Promise.withResolvers<void>();
    const waiter = { ends, resolve };
    this.#waiters.push(waiter);
    const timer = setTimeout(() => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      log.warn("could not read {topic} to its end within 10 s", { topic: this.#options.topic });
      resolve();
    }, 10_000);
    await promise.finally(() => clearTimeout(timer));
  }

  #reached(ends: ReadonlyMap<number, bigint>): boolean {
    return [...ends].every(([partition, end]) => (this.#read.get(partition) ?? 0n) >= end);
  }

  async set(key: string, value: unknown): Promise<void> {
    const before = this.#entries.get(key);
    this.#entries.set(key, value);
    try {
      await this.#producer.send({
        topic: this.#options.topic,
        acks: -1,
        messages: [{ key: this.#key(key), value: Buffer.from(JSON.stringify(value)) }],
      });
    } catch (error) {
      // Not durable, so not so here either (unless the reader has seen a newer value meanwhile).
      if (this.#entries.get(key) === value) {
        if (before === undefined) this.#entries.delete(key);
        else this.#entries.set(key, before);
      }
      throw error;
    }
  }

  delete(key: string): void {
    if (!this.#entries.delete(key)) return;
    const sent = this.#producer.send({
      topic: this.#options.topic,
      acks: -1,
      messages: [{ key: this.#key(key), value: null }],
    }).then(
      () => {},
      (error) => log.warn("could not delete {key}: {error}", { key, error: errorMessage(error) }),
    );
    this.#clearing.add(sent);
    sent.finally(() => this.#clearing.delete(sent));
  }

  /** Stops following and disconnects; forgets its reader group. */
  async stop(): Promise<void> {
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters = [];
    await Promise.allSettled(this.#clearing);
    await Promise.allSettled([this.#consumer.disconnect(), this.#producer.disconnect(), this.#admin?.disconnect()]);
    this.#admin = undefined;
    const admin = this.#options.kafka.admin();
    try {
      await admin.connect();
      await admin.deleteGroups([this.#readerGroup]);
    } catch {
      /* the group expires by itself */
    } finally {
      await admin.disconnect();
    }
  }
}
