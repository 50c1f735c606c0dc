/**
 * @module
 * The kafkajs side of publish: one record per send, acknowledged by all in-sync replicas, and the
 * output topics of a source topic created up front with its partition count.
 */
import { getLogger } from "@logtape/logtape";
import type { Admin, Producer } from "kafkajs";
import type { Pipeline } from "../model.ts";
import type { PublishContext } from "../stages/publish.ts";
import { BatchingSender } from "./batching_sender.ts";
import { toKafkaMessage } from "./message.ts";
import { topicMatches } from "../util/glob.ts";
import { topicName } from "../answer_topics.ts";

const log = getLogger(["agentstream", "publish"]);

/** Kafka errors a retry cannot fix: the record goes to the DLQ instead. */
const PERMANENT = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_RECORD",
  "CORRUPT_MESSAGE",
  "INVALID_TOPIC_EXCEPTION",
]);

const isPermanent = (error: unknown) => PERMANENT.has((error as { type?: string }).type ?? "");
const isTooLarge = (error: unknown) =>
  ["MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"].includes((error as { type?: string }).type ?? "");

/** A {@link PublishContext} that produces with kafkajs, in batches (see {@link BatchingSender}). */
export function kafkaPublisher(producer: Producer): PublishContext {
  const sender = new BatchingSender(producer, isPermanent);
  return {
    send: (topic, record) => sender.send(topic, toKafkaMessage(record)),
    isPermanent,
    isTooLarge,
  };
}

/** Output topic names that depend only on the source topic (answers topics too), for the pipelines reading `topic`. */
export function outputTopicsOf(pipelines: readonly Pipeline[], topic: string): string[] {
  const names = new Set<string>();
  for (const pipeline of pipelines) {
    if (!pipeline.topics.some((pattern) => topicMatches(pattern, topic))) continue;
    const answers = pipeline.routes.flatMap((route) => route.answers ? [route.answers.topic] : []);
    for (const template of [pipeline.publish.responses, pipeline.publish.dlq, ...answers]) {
      const name = topicName(template, topic, pipeline.name);
      if (name) names.add(name);
    }
    // An answers topic's own DLQ, for answers of no waiting task.
    for (const template of answers) {
      const answersTopic = topicName(template, topic, pipeline.name);
      const dlq = answersTopic && topicName(pipeline.publish.dlq, answersTopic, pipeline.name);
      if (dlq) names.add(dlq);
    }
  }
  return [...names];
}

/**
 * Creates the missing output topics of `sources`, each with its source's partition count, so that
 * consumers can subscribe before the first reply. Where the broker refuses, auto-creation on first
 * produce may still work, so this only warns.
 */
export async function ensureOutputTopics(
  admin: Admin,
  pipelines: readonly Pipeline[],
  sources: readonly string[],
): Promise<void> {
  try {
    const existing = new Set(await admin.listTopics());
    const metadata = await admin.fetchTopicMetadata({ topics: [...sources] });
    const wanted = metadata.topics.flatMap((source) =>
      outputTopicsOf(pipelines, source.name).filter((name) => !existing.has(name)).map((topic) => ({
        topic,
        numPartitions: source.partitions.length,
      }))
    );
    if (!wanted.length) return;
    await admin.createTopics({ topics: wanted, waitForLeaders: true });
    log.info("created output topics {topics}", { topics: wanted.map((t) => t.topic) });
  } catch (error) {
    log.warn("could not create output topics ({error}); relying on the broker's auto-creation", {
      error: String(error),
    });
  }
}
