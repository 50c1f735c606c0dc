/**
 * @module
 * DLQ replay: dead-lettered records go back to the topic they came from (`x-source-topic`), with
 * their original key, bytes and headers, once the cause of the failure is fixed. The bridge then
 * handles them like any new message. A replayed record carries `x-replay-count`; one that has been
 * replayed `maxReplays` times stays in the DLQ, so a message that keeps failing cannot cycle forever.
 *
 * One run reads the DLQ from its beginning (or `since`) up to its end as it was when the run
 * started, so records dead-lettered during the run wait for the next one. A run is not remembered:
 * running it twice replays twice (narrow a second run with `since`).
 *
 * @example
 * ```ts
 * import { replayPlan } from "./replay.ts";
 * const headers = { "x-source-topic": "orders.events", "x-error-stage": "invoke" };
 * const dlq = { key: null, value: new TextEncoder().encode("{}"), headers, timestampMs: 0 };
 * const plan = replayPlan(dlq, { stages: ["invoke"], maxReplays: 3 });
 * if (!("topic" in plan) || plan.topic !== "orders.events") throw new Error("back to its source topic");
 * if (plan.record.headers["x-replay-count"] !== "1" || plan.record.headers["x-error-stage"]) throw new Error("headers");
 * const again = { ...dlq, headers: { ...headers, "x-replay-count": "3" } };
 * if (!("skip" in replayPlan(again, { maxReplays: 3 }))) throw new Error("replayed 3 times: stays in the DLQ");
 * ```
 */
import { toKafkaMessage } from "./kafka/message.ts";
import { caughtUp, logEnds } from "./kafka/read_to_end.ts";
import { type Kafka, Partitioners } from "kafkajs";
import type { OutRecord } from "./model.ts";

/** Headers the bridge adds to a DLQ record; they are removed again on replay. */
const DLQ_HEADERS = [
  "x-source-topic",
  "x-source-partition",
  "x-source-offset",
  "x-pipeline",
  "x-route",
  "x-error-stage",
  "x-error-class",
  "x-error-message",
  "x-error-attempts",
  "x-failed-at",
  "x-task-id",
];

export interface ReplayFilter {
  /** Only records that failed in one of these stages (`x-error-stage`). */
  stages?: readonly string[];
  /** Only these failure classes (`x-error-class`). */
  classes?: readonly string[];
  /** Only these pipelines (`x-pipeline`). */
  pipelines?: readonly string[];
  /** Only records dead-lettered at or after this time (ms since the epoch). */
  sinceMs?: number;
  /** Only records dead-lettered before this time. */
  untilMs?: number;
  /** Records replayed this many times already stay where they are. */
  maxReplays: number;
}

/** A DLQ record as read: bytes, and header values as text (the first of a repeated header). */
export interface DlqRecord {
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Record<string, string>;
  /** Kafka's timestamp: when it was dead-lettered. */
  timestampMs: number;
}

export type ReplayPlan =
  | { topic: string; record: OutRecord }
  | { skip: "filtered" | "max-replays" | "no-source" };

/** What to do with one DLQ record. */
export function replayPlan(dlq: DlqRecord, filter: ReplayFilter): ReplayPlan {
  const h = dlq.headers;
  const among = (list: readonly string[] | undefined, value: string | undefined) =>
    !list?.length || (value !== undefined && list.includes(value));
  if (
    !among(filter.stages, h["x-error-stage"]) || !among(filter.classes, h["x-error-class"]) ||
    !among(filter.pipelines, h["x-pipeline"]) ||
    (filter.sinceMs !== undefined && dlq.timestampMs < filter.sinceMs) ||
    (filter.untilMs !== undefined && dlq.timestampMs >= filter.untilMs)
  ) {
    return { skip: "filtered" };
  }
  const topic = h["x-source-topic"];
  if (!topic) return { skip: "no-source" };
  const replays = Number(h["x-replay-count"] ?? "0");
  if (replays >= filter.maxReplays) return { skip: "max-replays" };
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(h)) {
    if (!DLQ_HEADERS.includes(name)) headers[name] = value;
  }
  headers["x-replay-count"] = String(replays + 1);
  return { topic, record: { key: dlq.key, value: dlq.value ?? new Uint8Array(), headers } };
}

export interface ReplayCounts {
  /** DLQ records read. */
  read: number;
  /** Re-published (or, in a dry run, that would be). */
  replayed: number;
  filtered: number;
  /** Left in the DLQ: replayed `maxReplays` times already. */
  atMaxReplays: number;
  /** Left in the DLQ: no `x-source-topic` header (not written by the bridge). */
  noSource: number;
  /** Records the run will read in all. */
  total: number;
  /** Replayed records by source topic. */
  byTopic: Record<string, number>;
}

export interface ReplayOptions {
  kafka: Kafka;
  /** The DLQ topic to read. */
  from: string;
  filter: ReplayFilter;
  dryRun?: boolean;
  /** Called as records are read (for a progress line). */
  progress?: (counts: Readonly<ReplayCounts>) => void;
}

const utf8 = new TextDecoder();

/**
 * Reads `from` up to its current end and re-publishes what the filter lets through; resolves with
 * the counts once every replayed record is acknowledged. Throws when the topic does not exist.
 */
export async function replayDlq(options: ReplayOptions): Promise<ReplayCounts> {
  const { kafka, from, filter } = options;
  const admin = kafka.admin();
  const groupId = `agentstream-replay-${crypto.randomUUID()}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 500 });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  const counts: ReplayCounts = {
    read: 0,
    replayed: 0,
    filtered: 0,
    atMaxReplays: 0,
    noSource: 0,
    total: 0,
    byTopic: {},
  };
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(from)) throw new Error(`topic ${from} does not exist`);
    // The DLQ as it is now: records dead-lettered during the run wait for the next one.
    const { ends, records } = await logEnds(admin, from);
    counts.total = records;
    if (!ends.size) return counts;
    await Promise.all([consumer.connect(), options.dryRun ? undefined : producer.connect()]);
    const sendFailed = Promise.withResolvers<never>();
    const read = caughtUp(consumer, from, ends);
    const sends: Promise<unknown>[] = [];
    await consumer.subscribe({ topics: [from], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: ({ batch }) => {
        const replays: { topic: string; record: OutRecord }[] = [];
        for (const message of batch.messages) {
          if (!ends.has(batch.partition) || BigInt(message.offset) >= ends.get(batch.partition)!) continue;
          counts.read++;
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(message.headers ?? {})) {
            const first = Array.isArray(value) ? value[0] : value;
            if (first !== undefined) headers[name] = typeof first === "string" ? first : utf8.decode(first);
          }
          const plan = replayPlan(
            { key: message.key, value: message.value, headers, timestampMs: Number(message.timestamp) },
            filter,
          );
          if ("skip" in plan) {
            if (plan.skip === "filtered") counts.filtered++;
            else if (plan.skip === "max-replays") counts.atMaxReplays++;
            else counts.noSource++;
            continue;
          }
          counts.replayed++;
          counts.byTopic[plan.topic] = (counts.byTopic[plan.topic] ?? 0) + 1;
          replays.push(plan);
        }
        if (replays.length && !options.dryRun) {
          sends.push(
            producer.sendBatch({
              acks: -1,
              topicMessages: replays.map(({ topic, record }) => ({
                topic,
                messages: [toKafkaMessage(record)],
              })),
            }),
          );
          // Seen at once (the run stops), and again below, where every send is awaited.
          sends.at(-1)!.catch((error) => sendFailed.reject(error));
        }
        options.progress?.(counts);
        return Promise.resolve();
      },
    });
    await Promise.race([read, sendFailed.promise]);
    await Promise.all(sends);
    return counts;
  } finally {
    await Promise.allSettled([consumer.disconnect(), producer.disconnect()]);
    await admin.deleteGroups([groupId]).catch(() => {});
    await admin.disconnect();
  }
}
