/**
 * @module
 * Long-running A2A tasks that outlive a bridge: when an agent answers a message with a task that
 * is not finished, its id is written to a compacted Kafka topic (default `__agentstream.tasks`,
 * keyed by consumer group and message id) before the bridge starts polling it, and a tombstone is
 * written once the task is over. A bridge that gets the message again (after a restart or a
 * rebalance, since nothing unfinished is committed) finds the task there and polls it with
 * `tasks/get` instead of sending the message to the agent a second time.
 *
 * Every bridge reads the whole topic at start-up and then follows it, so a task started by a group
 * member that died is known to the member that takes over its partitions.
 *
 * @example
 * ```ts
 * import { KafkaTaskRegistry } from "./task_registry.ts";
 * // const tasks = new KafkaTaskRegistry({ kafka, topic: "__agentstream.tasks", groupId: "g" });
 * // await tasks.start();
 * // tasks.get(messageId) ?? await tasks.remember(messageId, { taskId, url });
 * ```
 */
import { Buffer } from "node:buffer";
import { getLogger } from "@logtape/logtape";
import { type Consumer, type Kafka, Partitioners, type Producer } from "kafkajs";
import { errorMessage } from "../errors.ts";
import { caughtUp, logEnds } from "./read_to_end.ts";

const log = getLogger(["agentstream", "tasks"]);

/** A task an agent is working on for a message. */
export interface RunningTask {
  taskId: string;
  /** The endpoint that owns the task. */
  url: string;
}

/** What invoke needs of the registry (an in-memory one serves unit tests). */
export interface TaskRegistry {
  get(messageId: string): RunningTask | undefined;
  /** Resolves once the record is durable: only then may the bridge wait on the task. */
  remember(messageId: string, task: RunningTask): Promise<void>;
  /** The task is over; a failure to write that is logged (a stale entry is found not to be running). */
  forget(messageId: string): void;
}

export interface KafkaTaskRegistryOptions {
  kafka: Kafka;
  topic: string;
  /** The bridge's consumer group: entries of other groups are theirs. */
  groupId: string;
}

export class KafkaTaskRegistry implements TaskRegistry {
  readonly #options: KafkaTaskRegistryOptions;
  readonly #tasks = new Map<string, RunningTask>();
  readonly #producer: Producer;
  readonly #consumer: Consumer;
  readonly #readerGroup = `agentstream-tasks-${crypto.randomUUID()}`;
  /** Tombstones on their way: a stop waits for them. */
  readonly #clearing = new Set<Promise<void>>();

  constructor(options: KafkaTaskRegistryOptions) {
    this.#options = options;
    this.#producer = options.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    this.#consumer = options.kafka.consumer({ groupId: this.#readerGroup, maxWaitTimeInMs: 500 });
  }

  #key(messageId: string): string {
    return `${this.#options.groupId}/${messageId}`;
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
    const prefix = `${this.#options.groupId}/`;
    await Promise.all([this.#producer.connect(), this.#consumer.connect()]);
    await this.#consumer.subscribe({ topics: [topic], fromBeginning: true });
    await this.#consumer.run({
      eachMessage: ({ message }) => {
        const key = message.key?.toString() ?? "";
        if (!key.startsWith(prefix)) return Promise.resolve();
        const messageId = key.slice(prefix.length);
        if (message.value === null) this.#tasks.delete(messageId);
        else {
          try {
            this.#tasks.set(messageId, JSON.parse(message.value.toString()));
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
    log.debug("{count} agent tasks in progress from earlier runs", { count: this.#tasks.size });
  }

  get(messageId: string): RunningTask | undefined {
    return this.#tasks.get(messageId);
  }

  async remember(messageId: string, task: RunningTask): Promise<void> {
    this.#tasks.set(messageId, task);
    await this.#producer.send({
      topic: this.#options.topic,
      acks: -1,
      messages: [{ key: this.#key(messageId), value: Buffer.from(JSON.stringify(task)) }],
    });
  }

  forget(messageId: string): void {
    if (!this.#tasks.delete(messageId)) return;
    const sent = this.#producer.send({
      topic: this.#options.topic,
      acks: -1,
      messages: [{ key: this.#key(messageId), value: null }],
    }).then(
      () => {},
      (error) => log.warn("could not clear task of {messageId}: {error}", { messageId, error: errorMessage(error) }),
    );
    this.#clearing.add(sent);
    sent.finally(() => this.#clearing.delete(sent));
  }

  /** Stops following and disconnects; forgets its reader group. */
  async stop(): Promise<void> {
    await Promise.allSettled(this.#clearing);
    await Promise.allSettled([this.#consumer.disconnect(), this.#producer.disconnect()]);
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
