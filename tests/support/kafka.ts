/** Kafka helpers for integration tests: unique names, producing, and reading a topic until enough arrived. */
import { Buffer } from "node:buffer";
import { type IHeaders, type Kafka, Partitioners } from "kafkajs";
import { loadSettings } from "../../src/config/settings.ts";
import { createKafka } from "../../src/kafka/client.ts";
import { testBroker } from "./broker.ts";
import { until } from "./until.ts";

/** A short random id, to keep every test's topics and groups its own. */
export function uniqueId(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** A kafkajs client on the test broker. */
export async function testKafka(): Promise<{ kafka: Kafka; brokers: string[] }> {
  const brokers = [await testBroker()];
  return { kafka: createKafka(loadSettings({ KAFKA_CLIENT_ID: "agentstream-test" }), brokers), brokers };
}

/** Creates topics (with `partitions` each, and topic `configs` such as `max.message.bytes`) and waits for their leaders. */
export async function createTopics(
  kafka: Kafka,
  topics: string[],
  partitions = 1,
  configs: Record<string, string> = {},
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const configEntries = Object.entries(configs).map(([name, value]) => ({ name, value }));
    await admin.createTopics({
      topics: topics.map((topic) => ({ topic, numPartitions: partitions, configEntries })),
      waitForLeaders: false,
    });
    // kafkajs' own waitForLeaders gives up on "This server does not host this topic-partition", which a
    // broker that has just restarted answers for a new topic until its metadata catches up.
    await until(async () => {
      try {
        const metadata = await admin.fetchTopicMetadata({ topics });
        return metadata.topics.every((topic) =>
          topic.partitions.length === partitions && topic.partitions.every((partition) => partition.leader >= 0)
        );
      } catch (error) {
        if ((error as { type?: string }).type === "UNKNOWN_TOPIC_OR_PARTITION") return false;
        throw error;
      }
    }, `leaders for ${topics.join(", ")}`);
  } finally {
    await admin.disconnect();
  }
}

export interface TestMessage {
  key?: string | null;
  value: string | Uint8Array | null;
  headers?: Record<string, string>;
  partition?: number;
}

/** `count` JSON events `{n, tag}`, keyed apart (`${tag}${n}`): a tag makes their texts this test's own. */
export function keyedEvents(count: number, tag = "e"): TestMessage[] {
  return Array.from({ length: count }, (_, n) => ({ key: `${tag}${n}`, value: JSON.stringify({ n, tag }) }));
}

/** Produces messages to `topic`, acknowledged by the broker. */
export async function produce(kafka: Kafka, topic: string, messages: TestMessage[]): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: messages.map((m) => ({
        key: m.key ?? null,
        value: m.value === null ? null : typeof m.value === "string" ? m.value : Buffer.from(m.value),
        headers: m.headers,
        partition: m.partition,
      })),
    });
  } finally {
    await producer.disconnect();
  }
}

/**
 * Waits until `topics` exist (the bridge creates output topics when it subscribes). Kafka has no
 * event for a new topic, so this polls the topic list.
 */
export async function waitForTopics(kafka: Kafka, topics: string[], timeoutMs = 60_000): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((topic) => !existing.has(topic));
      if (!missing.length) return;
      if (Date.now() > deadline) throw new Error(`topics never appeared: ${missing.join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

/** A record as read back by a test. */
export interface ReadRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

function headersOf(headers: IHeaders | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers ?? {}).flatMap(([name, value]) =>
      value === undefined ? [] : [[name, String(Array.isArray(value) ? value[0] : value)]]
    ),
  );
}

/**
 * Reads `topics` from the beginning until `count` records arrived (or, given `until`, until it
 * holds for the records read so far) and returns them. Fails after `timeoutMs`. To prove that no
 * more than `count` exist, compare {@link topicSize} afterwards.
 */
export async function readRecords(
  kafka: Kafka,
  topics: string[],
  count: number,
  { timeoutMs = 60_000, until }: { timeoutMs?: number; until?: (records: ReadRecord[]) => boolean } = {},
): Promise<ReadRecord[]> {
  const enoughRead = until ?? ((records: ReadRecord[]) => records.length >= count);
  await waitForTopics(kafka, topics, timeoutMs);
  const consumer = kafka.consumer({ groupId: `reader-${uniqueId()}` });
  const records: ReadRecord[] = [];
  const enough = Promise.withResolvers<void>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ topic, partition, message }) => {
        records.push({
          topic,
          partition,
          offset: message.offset,
          key: message.key?.toString() ?? null,
          value: message.value,
          headers: headersOf(message.headers),
        });
        if (enoughRead(records)) enough.resolve();
        return Promise.resolve();
      },
    });
    if (enoughRead(records)) enough.resolve();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`read ${records.length} of ${count} records from ${topics} in ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([enough.promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
    return [...records];
  } finally {
    await consumer.disconnect();
  }
}

/** How many records `topic` holds (high watermark minus low, over its partitions); 0 if it does not exist. */
export async function topicSize(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return 0;
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

/** The offsets `groupId` has committed on `topic`, by partition (-1: none). */
export async function committedOffsets(kafka: Kafka, groupId: string, topic: string): Promise<Record<number, string>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return Object.fromEntries(result.partitions.map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Every record `topic` holds now, read_committed: writes an end marker (key `end`) to each
 * partition, reads until all markers are back, and returns the other records (without the markers
 * of earlier calls either: keys `end-…` are reserved for them). Once the
 * writers have stopped, this proves there are no more (record counts cannot: transaction markers
 * take offsets too).
 */
export async function readAll(kafka: Kafka, topic: string, timeoutMs = 120_000): Promise<ReadRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  let partitions: number;
  try {
    partitions = (await admin.fetchTopicOffsets(topic)).length;
  } finally {
    await admin.disconnect();
  }
  const marker = `end-${uniqueId()}`;
  await produce(
    kafka,
    topic,
    Array.from({ length: partitions }, (_, partition) => ({ key: marker, value: "{}", partition })),
  );
  const records = await readRecords(kafka, [topic], 0, {
    until: (read) => read.filter((r) => r.key === marker).length === partitions,
    timeoutMs,
  });
  return records.filter((r) => r.key !== marker && !r.key?.startsWith("end-"));
}
