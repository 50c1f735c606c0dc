/**
 * @module
 * The consumer adapter: the one place that drives kafkajs's consumer. It turns fetches into an
 * `AsyncIterable<Batch>`, pauses and resumes topics as flow control says, commits offsets (and
 * says so when kafkajs silently skips a commit), and tells its {@link RebalanceListener} whenever
 * kafkajs will hand out uncommitted messages again, whatever caused it: a rebalance, a rejoin after
 * UNKNOWN_MEMBER_ID, a crash and restart, or our own re-subscription.
 *
 * Subscriptions are resolved by {@link resolveTopics} now and every `refreshMs`, so a topic created
 * later that matches a glob is picked up. kafkajs cannot add topics to a running consumer, so a
 * change of topics pauses fetching, waits until everything consumed so far is finished and
 * committed (the listener's `drain`), then subscribes again: nothing is redelivered by the switch.
 *
 * The batches channel is bounded: while it is full, `eachBatch` waits (heartbeating), so fetching
 * stops instead of piling messages up in memory.
 *
 * @example
 * ```ts
 * import type { Admin, EachBatchPayload, Kafka } from "kafkajs";
 * import { ConsumerAdapter } from "./consumer_adapter.ts";
 * const message = { offset: "0", key: null, value: new TextEncoder().encode("{}"), headers: {}, timestamp: "0" };
 * const fetched = { topic: "orders.events", partition: 0, messages: [message], highWatermark: "1" };
 * const consumer = { // a stand-in for kafkajs's consumer, which fetches one batch when run
 *   events: {}, on() {}, pause() {}, resume() {}, connect: () => Promise.resolve(), subscribe: () => Promise.resolve(),
 *   run({ eachBatch }: { eachBatch: (payload: EachBatchPayload) => Promise<void> }) {
 *     const payload = { batch: fetched, resolveOffset() {}, isRunning: () => true, isStale: () => false };
 *     void eachBatch(payload as unknown as EachBatchPayload);
 *     return Promise.resolve();
 *   },
 * };
 * const kafka = { consumer: () => consumer } as unknown as Kafka;
 * const admin = { listTopics: () => Promise.resolve(["orders.events", "orders.events.responses"]) } as unknown as Admin;
 * const adapter = new ConsumerAdapter({
 *   kafka, admin, groupId: "g", subscriptions: ["orders.*"], isOutput: (topic) => topic.endsWith(".responses"),
 *   fromBeginning: true, refreshMs: 60_000,
 * });
 * adapter.attach({ onBatch: (batch) => batch, rebalance: { partitionsChanged() {}, drain: () => Promise.resolve() } });
 * await adapter.start();
 * if (adapter.topics.join() !== "orders.events") throw new Error("the glob matches the source, not the output");
 * for await (const batch of adapter.batches()) {
 *   if (batch.topic !== "orders.events" || batch.records[0].offset !== "0") throw new Error("the fetched batch");
 *   break;
 * }
 * await adapter.close();
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { Admin, Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage } from "kafkajs";
import {
  type Batch,
  type HeaderValue,
  partitionId,
  partitionOf,
  type SourceRecord,
  type TopicPartition,
} from "../model.ts";
import type { TopicPartitionOffset } from "../delivery/offsets.ts";
import type { PartitionChange, Source, SourceHandlers } from "../delivery/ports.ts";
import { Channel } from "../util/channel.ts";
import { resolveTopics } from "./topics.ts";

const log = getLogger(["agentstream", "consumer"]);

/** How long the consumer keeps restarting while it cannot rejoin its group (the broker is gone) before the bridge stops. */
const RESTART_FOR_MS = 5 * 60_000;
const encoder = new TextEncoder();

/** What the adapter hands its batches and partition changes to: see {@link ConsumerAdapter.attach}. */
export type ConsumerHandlers = SourceHandlers;

export interface ConsumerAdapterOptions {
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
  /** Called with the topics newly subscribed, before their first fetch (e.g. to create outputs). */
  onSubscribe?: (topics: string[]) => Promise<void>;
  /**
   * Topics consumed beside the subscribed ones (the answers topics of tasks that ask), given the
   * source topics; consumed once they exist (`onSubscribe` creates them where it can).
   */
  companions?: (sources: string[]) => string[];
  /** Batches buffered ahead of the pipeline. */
  capacity?: number;
  /** The wait before the adapter restarts a consumer kafkajs left stopped (default 1 s). */
  restartDelayMs?: number;
}

/**
 * Errors no restart can cure (credentials or ACLs refused): the bridge stops and says why. kafkajs
 * also deems others non-retriable that a broker restart causes, such as
 * KafkaJSGroupCoordinatorNotFound; those are restarted.
 */
function isFatal(error: unknown): boolean {
  const { name, type } = (error ?? {}) as { name?: string; type?: string };
  return /SASL|AUTHENTICATION|AUTHORIZATION/i.test(`${name} ${type}`);
}

/** Whether kafkajs restarts this crash itself when `restartOnFailure` agrees (src/consumer/index.js). */
function kafkajsRetries(error: unknown): boolean {
  let cause = error as { name?: string; retriable?: boolean; cause?: unknown } | undefined;
  if (cause?.name === "KafkaJSNumberOfRetriesExceeded") return true;
  while ((cause as { cause?: unknown } | undefined)?.cause) cause = cause!.cause as typeof cause;
  return cause?.retriable === true;
}

/** A header value as bytes; a header without a value (null on the wire) stays null. */
function toBytes(value: Buffer | string | null | undefined): HeaderValue {
  if (value === null || value === undefined) return null;
  return typeof value === "string" ? encoder.encode(value) : value;
}

function toHeaders(headers: IHeaders | undefined): Record<string, HeaderValue | HeaderValue[]> {
  const result: Record<string, HeaderValue | HeaderValue[]> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
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

export class ConsumerAdapter implements Source {
  readonly #options: ConsumerAdapterOptions;
  #handlers: ConsumerHandlers | undefined;
  /** The partitions the last join gave this member (none while it rejoins). */
  #owned: readonly TopicPartition[] = [];
  readonly #consumer: Consumer;
  readonly #channel: Channel<Batch>;
  #subscribed: string[] = [];
  /** Companion topics found missing (warned of once). */
  readonly #absent = new Set<string>();
  #running = false;
  #closed = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  /**
   * Topics, and partitions as {@link partitionId}s, that flow control wants paused; applied again
   * after every (re)start of kafkajs's runner.
   */
  #paused: ReadonlySet<string> = new Set();
  #joined = false;
  /** When the consumer began to crash without joining its group in between. */
  #crashingSince: number | undefined;
  /** Subscribing again: everything stays paused, whatever flow control says meanwhile. */
  #draining = false;
  /** Commits kafkajs reported as sent to the coordinator. */
  #commitsSent = 0;
  #refreshing: Promise<void> = Promise.resolve();
  #restartTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: ConsumerAdapterOptions) {
    this.#options = options;
    this.#channel = new Channel(options.capacity ?? 8);
    this.#consumer = options.kafka.consumer({
      groupId: options.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: Math.min(3_000, Math.floor((options.sessionTimeoutMs ?? 30_000) / 10)),
      // Also how long kafkajs sleeps when every partition is paused (consumerGroup.js, fetch): at
      // 1 s, each resume after the in-flight cap idled that long, and throughput was capped near
      // KAFKA_MAX_IN_FLIGHT per second. A stop waits for the fetch in progress too.
      maxWaitTimeInMs: 100,
      // At most 256 KiB per partition per fetch (kafkajs: 1 MiB): more than the in-flight caps take
      // in is dropped and fetched again, and decoding it is most of the bridge's memory churn.
      maxBytesPerPartition: 256 * 1024,
      // kafkajs restarts after a retriable crash, without end by default: a broker gone for good
      // then hangs the bridge. Restart until crashes have gone on for RESTART_FOR_MS without a join.
      retry: {
        restartOnFailure: (error) => Promise.resolve(this.#keepRestarting(error)),
      },
    });
    const { GROUP_JOIN, CRASH, REBALANCING, STOP, DISCONNECT, COMMIT_OFFSETS } = this.#consumer.events;
    this.#consumer.on(GROUP_JOIN, ({ payload }) => {
      this.#joined = true;
      this.#crashingSince = undefined;
      // Every join hands out partitions from their committed offsets, whether or not kafkajs said
      // REBALANCING first (it does not on a rejoin after UNKNOWN_MEMBER_ID or a restart).
      const assigned = Object.entries(payload.memberAssignment ?? {}).flatMap(([topic, partitions]) =>
        (partitions as number[]).map((partition) => ({ topic, partition }))
      );
      this.#changed("join", "joined the group", assigned);
      this.#applyPaused();
    });
    for (const left of [CRASH, REBALANCING, STOP, DISCONNECT]) this.#consumer.on(left, () => this.#joined = false);
    this.#consumer.on(CRASH, ({ payload }) => {
      this.#changed("crash", `the consumer crashed: ${payload.error?.message ?? payload.error}`);
      if (payload.restart || this.#closed) return;
      // kafkajs has disconnected and will not restart: a retriable error it asked us about already
      // (and we said no), a non-retriable one it never retries, though a broker restart causes some.
      this.#running = false;
      if (kafkajsRetries(payload.error) || isFatal(payload.error) || !this.#keepRestarting(payload.error)) {
        this.#channel.fail(payload.error);
      } else {
        this.#restartLater();
      }
    });
    this.#consumer.on(REBALANCING, () => {
      log.info("the consumer group is rebalancing");
      this.#changed("rebalance", "rebalancing");
    });
    this.#consumer.on(COMMIT_OFFSETS, () => this.#commitsSent++);
  }

  /** Where batches and partition changes go: set once, before {@link start}. */
  attach(handlers: ConsumerHandlers): void {
    this.#handlers = handlers;
  }

  /** Tells the listener that partitions are handed out again from their committed offsets. */
  #changed(kind: PartitionChange["kind"], cause: string, assigned?: readonly TopicPartition[]): void {
    const revoked = this.#owned;
    // A seek keeps what is owned; anything else leaves nothing owned until the next join says.
    if (assigned) this.#owned = assigned;
    else if (kind !== "seek") this.#owned = [];
    this.#handlers?.rebalance.partitionsChanged({ kind, cause, revoked, ...(assigned ? { assigned } : {}) });
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
    if (!this.#handlers) throw new Error("the consumer adapter has no handlers: attach() them before start()");
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
    let existing = await this.#options.admin.listTopics();
    const { topics: sources, missing } = resolveTopics(this.#options.subscriptions, existing, this.#options.isOutput);
    const newSources = sources.filter((topic) => !this.#subscribed.includes(topic));
    const wanted = this.#options.companions?.(sources).filter((topic) => !this.#subscribed.includes(topic)) ?? [];
    // Nothing new, and consuming: done. (Not consuming with topics known means an earlier try failed.)
    if (!newSources.length && !wanted.length && (this.#running || !this.#subscribed.length)) return;
    if (missing.length) log.info("waiting for topics to exist: {missing}", { missing });
    if (newSources.length) await this.#options.onSubscribe?.(newSources);
    if (wanted.some((topic) => !existing.includes(topic))) existing = await this.#options.admin.listTopics();
    const absent = wanted.filter((topic) => !existing.includes(topic) && !this.#absent.has(topic));
    if (absent.length) {
      absent.forEach((topic) => this.#absent.add(topic));
      log.warn(
        "answers topics {absent} do not exist and could not be created: answers to tasks that ask wait until they do",
        {
          absent,
        },
      );
    }
    const companions = wanted.filter((topic) => existing.includes(topic));
    const added = [...newSources, ...companions];
    if (!added.length && (this.#running || !this.#subscribed.length)) return;
    if (this.#running) {
      log.info("new topics {added}: pausing to subscribe again", { added });
      this.#draining = true;
      this.#pauseAll();
      try {
        await this.#handlers!.rebalance.drain();
      } finally {
        this.#draining = false;
      }
      // Stopping now would leave the group before the final commit: let close() finish instead.
      if (this.#closed) return;
      this.#running = false;
      await this.#consumer.stop();
      this.#changed("resubscribe", "subscribing again");
    }
    if (this.#closed) return;
    if (added.length) {
      // Topics found after start-up are read from their beginning whatever the reset policy says:
      // whatever was written to them before they were found is new to us.
      const fromBeginning = this.#subscribed.length ? true : this.#options.fromBeginning;
      if (newSources.length) await this.#consumer.subscribe({ topics: newSources, fromBeginning });
      // Every answer counts, whenever it was written: an answers topic is read from its beginning.
      if (companions.length) await this.#consumer.subscribe({ topics: companions, fromBeginning: true });
    }
    this.#subscribed = [...this.#subscribed, ...added].sort();
    log.info("consuming {topics}", { topics: this.#subscribed });
    await this.#run();
  }

  async #run(): Promise<void> {
    await this.#consumer.run({
      autoCommit: false,
      // Offsets are resolved part by part as parts are queued: a batch left half-way (rebalance,
      // stop) is fetched again from the first part not queued.
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    this.#running = true;
    this.#applyPaused();
  }

  /**
   * Whether to restart after `error`: yes until crashes have gone on for RESTART_FOR_MS without a
   * join in between (a broker gone for good then stops the bridge instead of hanging it).
   */
  #keepRestarting(error: unknown): boolean {
    this.#crashingSince ??= Date.now();
    const restart = Date.now() - this.#crashingSince < RESTART_FOR_MS;
    log.warn("the consumer failed ({error}): {action}", {
      error: (error as Error)?.message ?? String(error),
      action: restart ? "restarting" : "giving up",
    });
    return restart;
  }

  /** Connects and runs the consumer again after a while, in turn with subscription changes. */
  #restartLater(): void {
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.#refreshing = this.#refreshing.then(async () => {
        if (this.#closed || this.#running) return;
        try {
          await this.#consumer.connect();
          // A run whose start fails crashes again (CRASH), which decides anew.
          await this.#run();
        } catch (error) {
          if (this.#closed) return;
          if (!isFatal(error) && this.#keepRestarting(error)) this.#restartLater();
          else this.#channel.fail(error);
        }
      });
    }, this.#options.restartDelayMs ?? 1_000);
  }

  // kafkajs throws when its group is not set up (between stop and run, or restarting after a
  // crash); there is nothing to pause then, and the set is applied again after the next join.
  #pauseAll(): void {
    this.#try("pause", () => this.#consumer.pause(this.#subscribed.map((topic) => ({ topic }))));
  }

  #try(what: string, action: () => void): void {
    try {
      action();
    } catch (error) {
      log.debug("could not {what}: {error}", { what, error: String(error) });
    }
  }

  /**
   * Fetches only topics and partitions outside `paused` (topic names, and partitions as
   * {@link partitionId}s) from now on: flow control's whole set, not a change.
   */
  setPaused(paused: ReadonlySet<string>): void {
    this.#paused = new Set(paused);
    if (this.#running && !this.#closed && !this.#draining) this.#applyPaused();
  }

  /**
   * Pauses the wanted topics and resumes the others, all of them each time: kafkajs forgets its
   * pauses when its runner restarts, and both calls are cheap and idempotent.
   */
  #applyPaused(): void {
    const pause = this.#subscribed.filter((topic) => this.#paused.has(topic));
    const resume = this.#subscribed.filter((topic) => !this.#paused.has(topic));
    // Partitions paused on their own, in topics that flow: resuming a topic resumes its partitions too.
    const partitions = new Map<string, number[]>();
    for (const id of this.#paused) {
      const { topic, partition } = partitionOf(id) ?? {};
      if (topic === undefined || !resume.includes(topic)) continue;
      partitions.set(topic, [...partitions.get(topic) ?? [], partition!]);
    }
    if (pause.length) this.#try("pause", () => this.#consumer.pause(pause.map((topic) => ({ topic }))));
    if (resume.length) this.#try("resume", () => this.#consumer.resume(resume.map((topic) => ({ topic }))));
    if (partitions.size) {
      const paused = [...partitions].map(([topic, partitions]) => ({ topic, partitions }));
      this.#try("pause", () => this.#consumer.pause(paused));
    }
  }

  async #eachBatch({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    for (let start = 0; start < batch.messages.length;) {
      if (this.#closed || !isRunning() || isStale()) return;
      const room = this.#draining ? 0 : this.#handlers!.room?.(batch.topic, batch.partition) ?? Infinity;
      // No room: the partition is paused, and the rest of the batch is fetched again when it resumes.
      if (room <= 0) return;
      const part = batch.messages.slice(start, start + room);
      const records = part.map((message) => toRecord(batch.topic, batch.partition, message));
      const item = this.#handlers!.onBatch({
        topic: batch.topic,
        partition: batch.partition,
        records,
        highWatermark: batch.highWatermark,
      });
      if (!await this.#whileHeartbeating(this.#channel.send(item), heartbeat)) return;
      resolveOffset(part.at(-1)!.offset);
      start += part.length;
    }
  }

  /**
   * Waits for `promise`, heartbeating every second: waiting for the pipeline to take a batch can outlast the session
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

  /**
   * Moves the fetch position of `partitions` to their committed offsets as the group coordinator
   * has them now (what kafkajs read when it joined may be older), dropping what was fetched since;
   * then signals an assignment change, so work begun from the old position goes stale.
   */
  async seekToCommitted(partitions: readonly { topic: string; partition: number }[]): Promise<void> {
    const topics = [...new Set(partitions.map((p) => p.topic))];
    const wanted = new Set(partitions.map((p) => partitionId(p.topic, p.partition)));
    for (
      const { topic, partitions: offsets } of await this.#options.admin.fetchOffsets({
        groupId: this.#options.groupId,
        topics,
      })
    ) {
      for (const { partition, offset } of offsets) {
        if (!wanted.has(partitionId(topic, partition)) || BigInt(offset) < 0n) continue;
        this.#try("seek", () => this.#consumer.seek({ topic, partition, offset }));
      }
    }
    this.#changed("seek", "moved to the committed offsets");
  }

  /**
   * Commits these offsets for the group. Throws when the commit did not reach the coordinator:
   * kafkajs returns without a word while its runner is stopped (between our stop and run, or
   * while it restarts after a crash), so a commit that kafkajs did not report sending is an error.
   */
  async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    if (!offsets.length) return;
    if (!this.#running) throw new Error("the consumer is not running");
    const sent = this.#commitsSent;
    await this.#consumer.commitOffsets(offsets);
    if (this.#commitsSent === sent) throw new Error("kafkajs skipped the commit: its consumer is restarting");
  }

  /**
   * Stops fetching and ends {@link batches}; batches queued but not yet read are dropped (their
   * offsets stay uncommitted). The consumer stays in the group so that final commits succeed.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#restartTimer);
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
