/**
 * @module
 * The kafkajs side of publish: one record per send, acknowledged by all in-sync replicas, and the
 * output topics of a source topic created up front, with the broker's defaults or those configured.
 */
import { getLogger } from "@logtape/logtape";
import type { Admin, Producer } from "kafkajs";
import type { Pipeline } from "../model.ts";
import type { Sink } from "../delivery/ports.ts";
import { BatchingSender } from "./batching_sender.ts";
import { toKafkaMessage } from "./message.ts";
import { topicMatches } from "../util/glob.ts";
import { topicName } from "../answer_topics.ts";
import { type OutputTopics, unwritableReason } from "./output_topics.ts";
import { releasePass } from "../delivery/call_gate.ts";

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

/** Where the publisher's producer comes from, and how it checks a topic; see {@link BatchingSender}. */
export interface PublisherKafka {
  producer: Producer;
  /** A new, connected producer (the bridge closes them all when it stops). */
  renew?: () => Promise<Producer>;
  /** Whether a topic exists and may be described now. */
  exists?: (topic: string) => Promise<boolean>;
}

/**
 * A {@link Sink} that produces with kafkajs, in batches (see {@link BatchingSender}). With
 * `outputs`, a record for a topic that cannot be written waits until it can (see
 * {@link OutputTopics}), or until its job goes stale or `stop` aborts.
 */
export function kafkaPublisher(kafka: PublisherKafka, outputs?: OutputTopics, stop?: AbortSignal): Sink {
  const sender = new BatchingSender(kafka.producer, isPermanent, {
    isUnwritable: (error) => !!unwritableReason(error),
    isMissing: (error) => unwritableReason(error) === "missing",
    exists: kafka.exists,
    renew: kafka.renew,
  });
  return {
    send: (topic, record, job) => {
      const send = () => sender.send(topic, toKafkaMessage(record));
      if (!outputs) return send();
      const signalOf = () => {
        // It waits for a topic a person must fix: a resubscription does not wait for it (its
        // message is delivered again, and called again, whoever handles it next).
        releasePass(job);
        return stop ? AbortSignal.any([job.ack.signal, stop]) : job.ack.signal;
      };
      return outputs.write(topic, job.ctx.pipeline, send, signalOf);
    },
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

/** How the output topics the bridge creates are made: by default the source's partition count and the broker's replication factor. */
export interface OutputTopicShape {
  /** A count, `source` (the source topic's count, the default) or `broker` (its num.partitions). */
  partitions?: number | "source" | "broker";
  replicationFactor?: number;
}

/**
 * Creates the missing output topics of `sources` (with `shape`), so that consumers can subscribe
 * before the first reply. Where the broker refuses (topics belong to a platform team), this only
 * warns: they may exist by the time they are written, and one that cannot be written pauses its
 * pipelines then (see {@link OutputTopics}).
 */
export async function ensureOutputTopics(
  admin: Admin,
  pipelines: readonly Pipeline[],
  sources: readonly string[],
  shape: OutputTopicShape = {},
): Promise<void> {
  try {
    const existing = new Set(await admin.listTopics());
    const metadata = await admin.fetchTopicMetadata({ topics: [...sources] });
    const wanted = metadata.topics.flatMap((source) =>
      outputTopicsOf(pipelines, source.name).filter((name) => !existing.has(name)).map((topic) => ({
        topic,
        // -1: the broker's num.partitions and default.replication.factor.
        numPartitions: shape.partitions === "broker"
          ? -1
          : typeof shape.partitions === "number"
          ? shape.partitions
          : source.partitions.length,
        replicationFactor: shape.replicationFactor ?? -1,
      }))
    );
    if (!wanted.length) return;
    await admin.createTopics({ topics: wanted, waitForLeaders: true });
    log.info("created output topics {topics}", { topics: wanted.map((t) => t.topic) });
  } catch (error) {
    log.warn("could not create output topics ({error}); they are written if they exist by then", {
      error: String(error),
    });
  }
}
