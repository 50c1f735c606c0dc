/**
 * @module
 * Consumer lag while fetching is paused: log end offsets come with each fetch, but while a topic
 * is paused (an agent outage, backpressure) none come, so they are asked for every so often and
 * lag keeps growing where it grows.
 *
 * @example
 * ```ts
 * import { pollLogEnds } from "./log_ends.ts";
 * const seen: string[] = [];
 * const stop = pollLogEnds({
 *   topics: () => ["t"],
 *   fetchTopicOffsets: () => Promise.resolve([{ partition: 0, high: "42" }]),
 *   highWatermark: (topic, partition, high) => seen.push(`${topic}/${partition}@${high}`),
 *   everyMs: 10,
 * });
 * await new Promise((resolve) => setTimeout(resolve, 50));
 * stop();
 * if (seen[0] !== "t/0@42") throw new Error("polled");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../errors.ts";

const log = getLogger(["agentstream", "metrics"]);

/** Asks for the log end offsets of `topics` every `everyMs`, for the consumer-lag metric; returns the stop. */
export function pollLogEnds(options: {
  topics: () => readonly string[];
  fetchTopicOffsets: (topic: string) => Promise<{ partition: number; high: string }[]>;
  highWatermark: (topic: string, partition: number, high: string) => void;
  everyMs: number;
}): () => void {
  const timer = setInterval(async () => {
    try {
      for (const topic of options.topics()) {
        for (const { partition, high } of await options.fetchTopicOffsets(topic)) {
          options.highWatermark(topic, partition, high);
        }
      }
    } catch (error) {
      log.debug("could not read log end offsets: {error}", { error: errorMessage(error) });
    }
  }, options.everyMs);
  return () => clearInterval(timer);
}
