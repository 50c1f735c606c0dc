/**
 * @module
 * Which topics to consume. Exact names are taken as given; globs are matched against the broker's
 * topics, leaving out Kafka's internal topics and every topic that is an output of a pipeline (its
 * responses, DLQ or answers topic), so `orders.*` never feeds `orders.events.responses` back to the agent.
 *
 * @example
 * ```ts
 * import { resolveTopics } from "./topics.ts";
 * const existing = ["orders.events", "orders.events.responses"];
 * const { topics, missing } = resolveTopics(["orders.*", "customer.events"], existing, () => false);
 * if (topics.join() !== "orders.events" || missing.join() !== "customer.events") throw new Error(`${topics}; ${missing}`);
 * ```
 */
import type { Pipeline } from "../model.ts";
import type { Template } from "../template.ts";
import { globToRegExp, isGlob } from "../util/glob.ts";

/** A RegExp for the topic names a publish template can produce (`{$topic}.dlq` → `^.+\.dlq$`). */
export function templatePattern(template: Template): RegExp {
  const source = template.parts.map((part) =>
    "literal" in part ? part.literal.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") : ".+"
  ).join("");
  return new RegExp(`^${source}$`);
}

/** A predicate that says whether a topic is one that some pipeline writes to (or takes answers from). */
export function outputTopicTest(pipelines: readonly Pipeline[]): (topic: string) => boolean {
  const patterns = pipelines.flatMap((p) => [
    templatePattern(p.publish.responses),
    templatePattern(p.publish.dlq),
    ...p.routes.flatMap((route) => route.answers ? [templatePattern(route.answers.topic)] : []),
  ]);
  return (topic) => patterns.some((pattern) => pattern.test(topic));
}

/** Resolves subscriptions against existing topics; exact names that do not exist are `missing`. */
export function resolveTopics(
  subscriptions: readonly string[],
  existing: readonly string[],
  isOutput: (topic: string) => boolean,
): { topics: string[]; missing: string[] } {
  const have = new Set(existing);
  const topics = new Set<string>();
  const missing: string[] = [];
  for (const subscription of subscriptions) {
    if (!isGlob(subscription)) {
      if (have.has(subscription)) topics.add(subscription);
      else missing.push(subscription);
      continue;
    }
    const pattern = globToRegExp(subscription);
    for (const topic of existing) {
      if (!topic.startsWith("__") && pattern.test(topic) && !isOutput(topic)) topics.add(topic);
    }
  }
  return { topics: [...topics].sort(), missing };
}
