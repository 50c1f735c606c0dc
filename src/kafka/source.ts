/**
 * source: a kafkajs consumer turned into an `AsyncIterable<Batch>`, with manual commits only.
 *
 * Subscriptions are resolved by {@link resolveTopics} now and every `refreshMs`, so a topic created
 * later that matches a glob is picked up. kafkajs cannot add topics to a running consumer, so a
 * change of topics pauses fetching, waits until everything consumed so far is finished and
 * committed (`drain`), then subscribes again: nothing is redelivered by the switch.
 *
 * The batches channel is bounded: while it is full, `eachBatch` waits (heartbeating), so fetching
 * stops instead of piling messages up in memory.
 *
 * @example
 * ```ts
 * import { KafkaSource } from "./source.ts";
 * // const source = new KafkaSource({ kafka, groupId: "g", subscriptions: ["orders.*"], ... });
 * // await source.start();
 * // for await (const batch of source.batches()) ...
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { Admin, Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage } from "kafkajs";
import type { Batch, SourceRecord } from "../model.ts";
import type { TopicPartitionOffset } from "../offsets.ts";
import { Channel } from "../util/channel.ts";
import { resolveTopics } from "./topics.ts";

const log = getLogger(["agentstream", "source"]);
const encoder = new TextEncoder();

export interface SourceOptions {
  kafka: Kafka;
  admin: Admin;
  groupId: string;
  /** Exact topic names and globs. */
  subscriptions: readonly string[];
  /** Topics that globs must never match (the pipelines' outputs). */
  isOutput: (topic: string) => boolean;
  fromBeginning: boolean;
  refreshMs: number;
  /** The group's session timeout; heartbeats go out at a tenth of it (at most every 3 s). */
  sessionTimeoutMs?: number;
  /**
   * Called for a batch before it is queued: the offsets are then known to be in flight. Returns the
   * generation the batch belongs to.
   */
  onBatch: (batch: Batch) => number;
  /**
   * Resolves with how many more messages may be taken in now (at least 1): a fetched batch larger
   * than that is taken in parts, so the in-flight cap holds however large fetches are.
   */
  room?: () => Promise<number>;
  /**
   * Called when the group starts rebalancing, synchronously, before kafkajs rejoins: after the
   * rebalance kafkajs fetches every partition from its committed offset again.
   */
  onRebalance?: () => void;
  /** Called with fetching paused before a resubscribe: resolve once all queued work is committed. */
  drain: () => Promise<void>;
  /** Called with the topics newly subscribed, before their first fetch (e.g. to create outputs). */
  onSubscribe?: (topics: string[]) => Promise<void>;
  /** Batches buffered ahead of the pipeline. */
  capacity?: number;
}

function toBytes(value: Buffer | string): Uint8Array {
  return typeof value === "string" ? encoder.encode(value) : value;
}

function toHeaders(headers: IHeaders | undefined): Record<string, Uint8Array | Uint8Array[]> {
  const result: Record<string, Uint8Array | Uint8Array[]> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    result[name] = Array.isArray(value) ? value.map(toBytes) : toBytes(value);
  }
  return result;
}

/** A kafkajs message as a {@link SourceRecord}. */
export function toRecord(topic: string, partition: number, message: KafkaMessage): SourceRecord {
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key ?? null,
    value: message.value ?? null,
    headers: toHeaders(message.headers),
    timestamp: message.timestamp,
  };
}

export class KafkaSource {
  readonly #options: SourceOptions;
  readonly #consumer: Consumer;
  readonly #channel: Channel<Batch>;
  #subscribed: string[] = [];
  #running = false;
  #closed = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #paused = false;
  #joined = false;
  #refreshing: Promise<void> = Promise.resolve();

  constructor(options: SourceOptions) {
    this.#options = options;
    this.#channel = new Channel(options.capacity ?? 8);
    this.#consumer = options.kafka.consumer({
      groupId: options.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: Math.min(3_000, Math.floor((options.sessionTimeoutMs ?? 30_000) / 10)),
      // A stop waits for the fetch in progress; a short long-poll keeps stopping quick.
      maxWaitTimeInMs: 1_000,
    });
    const { GROUP_JOIN, CRASH, REBALANCING, STOP, DISCONNECT } = this.#consumer.events;
    this.#consumer.on(GROUP_JOIN, () => this.#joined = true);
    for (const left of [CRASH, REBALANCING, STOP, DISCONNECT]) this.#consumer.on(left, () => this.#joined = false);
    this.#consumer.on(CRASH, ({ payload }) => {
      if (!payload.restart) this.#channel.fail(payload.error);
    });
    this.#consumer.on(REBALANCING, () => {
      log.info("the consumer group is rebalancing");
      options.onRebalance?.();
    });
  }

  /** The topics consumed now. */
  get topics(): readonly string[] {
    return this.#subscribed;
  }

  /** Whether the consumer is a member of its group now (false while it rejoins, restarts or waits for topics). */
  get joined(): boolean {
    return this.#joined;
  }

  /** The consumed batches, until {@link close}. */
  batches(): AsyncIterable<Batch> {
    return this.#channel;
  }

  /** Connects, subscribes to what exists now and starts fetching. */
  async start(): Promise<void> {
    await this.#consumer.connect();
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#options.refreshMs);
  }

  /** Matches the subscriptions against the broker's topics again; subscribes to new ones. */
  refresh(): Promise<void> {
    this.#refreshing = this.#refreshing.then(() => this.#refresh()).catch((error) => {
      log.warn("could not refresh the topic list: {error}", { error: String(error) });
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    if (this.#closed) return;
    const existing = await this.#options.admin.listTopics();
    const { topics, missing } = resolveTopics(this.#options.subscriptions, existing, this.#options.isOutput);
    const added = topics.filter((topic) => !this.#subscribed.includes(topic));
    // Nothing new, and consuming: done. (Not consuming with topics known means an earlier try failed.)
    if (!added.length && (this.#running || !this.#subscribed.length)) return;
    if (missing.length) log.info("waiting for topics to exist: {missing}", { missing });
    if (added.length) await this.#options.onSubscribe?.(added);
    if (this.#running) {
      log.info("new topics {added}: pausing to subscribe again", { added });
      this.#pauseAll();
      await this.#options.drain();
      // Stopping now would leave the group before the final commit: let close() finish instead.
      if (this.#closed) return;
      this.#running = false;
      await this.#consumer.stop();
    }
    if (this.#closed) return;
    if (added.length) {
      // Topics found after start-up are read from their beginning whatever the reset policy says:
      // whatever was written to them before they were found is new to us.
      const fromBeginning = this.#subscribed.length ? true : this.#options.fromBeginning;
      await this.#consumer.subscribe({ topics: added, fromBeginning });
    }
    this.#subscribed = [...this.#subscribed, ...added].sort();
    log.info("consuming {topics}", { topics: this.#subscribed });
    await this.#consumer.run({
      autoCommit: false,
      // Offsets are resolved part by part as parts are queued: a batch left half-way (rebalance,
      // stop) is fetched again from the first part not queued.
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    this.#running = true;
    if (this.#paused) this.#pauseAll();
  }

  // kafkajs throws when its group is not set up (between stop and run, or restarting after a
  // crash); there is nothing to pause then, and the flag is applied again after the next run.
  #pauseAll(): void {
    try {
      this.#consumer.pause(this.#subscribed.map((topic) => ({ topic })));
    } catch (error) {
      log.debug("could not pause: {error}", { error: String(error) });
    }
  }

  /** Stops fetching (backpressure, agent outage) until {@link resume}; idempotent. */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    if (this.#running) this.#pauseAll();
  }

  /** Fetches again after {@link pause}; idempotent. */
  resume(): void {
    if (!this.#paused || this.#closed) return;
    this.#paused = false;
    if (!this.#running) return;
    try {
      this.#consumer.resume(this.#subscribed.map((topic) => ({ topic })));
    } catch (error) {
      log.debug("could not resume: {error}", { error: String(error) });
    }
  }

  async #eachBatch({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    for (let start = 0; start < batch.messages.length;) {
      if (this.#closed || !isRunning() || isStale()) return;
      const room = await this.#whileHeartbeating(this.#options.room?.() ?? Promise.resolve(Infinity), heartbeat);
      if (this.#closed || !isRunning() || isStale()) return;
      const part = batch.messages.slice(start, start + Math.max(1, room));
      const records = part.map((message) => toRecord(batch.topic, batch.partition, message));
      const registered: Batch = {
        topic: batch.topic,
        partition: batch.partition,
        records,
        highWatermark: batch.highWatermark,
      };
      const item: Batch = { ...registered, generation: this.#options.onBatch(registered) };
      if (!await this.#whileHeartbeating(this.#channel.send(item), heartbeat)) return;
      resolveOffset(part.at(-1)!.offset);
      start += part.length;
    }
  }

  /**
   * Waits for `promise`, heartbeating every second: waiting for room can outlast the session
   * timeout. A rebalance shows up as a heartbeat error and goes to kafkajs, which rejoins; the part
   * not yet queued is fetched again afterwards.
   */
  async #whileHeartbeating<T>(promise: Promise<T>, heartbeat: () => Promise<void>): Promise<T> {
    const settled = promise.then((value) => ({ value }));
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tick = new Promise<"tick">((resolve) => timer = setTimeout(resolve, 1_000, "tick"));
      const first = await Promise.race([settled, tick]);
      clearTimeout(timer);
      if (first !== "tick") return first.value;
      await heartbeat();
    }
  }

  /** Commits these offsets for the group; throws when the consumer is not running. */
  async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    // kafkajs silently skips commits while its consumer is stopped; say so instead.
    if (!this.#running) throw new Error("the consumer is not running");
    if (offsets.length) await this.#consumer.commitOffsets(offsets);
  }

  /**
   * Stops fetching and ends {@link batches}; batches queued but not yet read are dropped (their
   * offsets stay uncommitted). The consumer stays in the group so that final commits succeed.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#channel.drain();
    this.#channel.close();
    if (this.#running) this.#pauseAll();
    await this.#refreshing;
  }

  /** Leaves the group and disconnects. */
  async disconnect(): Promise<void> {
    await this.#consumer.disconnect();
  }
}
