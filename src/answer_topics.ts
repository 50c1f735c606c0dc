/**
 * @module
 * Where answers to tasks that asked arrive: each route's answers topic (`invoke.answers.topic`,
 * default `{$topic}.answers`) for each source topic its pipeline reads. The bridge consumes these
 * topics beside their sources (so an answer's offset commits with what it caused), creates them
 * with the other output topics, and keeps them out of source globs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { topicName } from "./answer_topics.ts";
 * import { parseTemplate } from "./template.ts";
 * const template = parseTemplate("{$topic}.answers");
 * if ("error" in template) throw new Error(template.error);
 * assert.equal(topicName(template, "orders.created", "orders"), "orders.created.answers");
 * ```
 */
import type { Pipeline } from "./model.ts";
import type { Template } from "./template.ts";
import { topicMatches } from "./util/glob.ts";

/**
 * The topic a template names for messages of `topic` in `pipeline`, where it depends on nothing
 * else ({$topic} and {$pipeline} only); undefined where it depends on the message.
 */
export function topicName(template: Template, topic: string, pipeline: string): string | undefined {
  let name = "";
  for (const part of template.parts) {
    if ("literal" in part) name += part.literal;
    else if (part.path === "$topic") name += topic;
    else if (part.path === "$pipeline") name += pipeline;
    else return undefined;
  }
  return name;
}

/** The answers topics of the pipelines that read `topic`, each with the pipelines it answers. */
export function answersTopicsOf(pipelines: readonly Pipeline[], topic: string): Map<string, Pipeline[]> {
  const topics = new Map<string, Pipeline[]>();
  for (const pipeline of pipelines) {
    if (!pipeline.topics.some((pattern) => topicMatches(pattern, topic))) continue;
    for (const route of pipeline.routes) {
      const name = route.answers && topicName(route.answers.topic, topic, pipeline.name);
      if (!name) continue;
      const answered = topics.get(name) ?? [];
      if (!answered.includes(pipeline)) topics.set(name, [...answered, pipeline]);
    }
  }
  return topics;
}

/**
 * The answers topics of the source topics consumed so far, and which pipelines each answers: what
 * dispatch asks of a record's topic.
 */
export class AnswerTopics {
  readonly #pipelines: readonly Pipeline[];
  readonly #answered = new Map<string, Pipeline[]>();

  constructor(pipelines: readonly Pipeline[]) {
    this.#pipelines = pipelines;
  }

  /** The answers topics of these source topics (remembered for {@link pipelinesFor}). */
  of(sources: readonly string[]): string[] {
    for (const source of sources) {
      for (const [topic, pipelines] of answersTopicsOf(this.#pipelines, source)) {
        const known = this.#answered.get(topic) ?? [];
        this.#answered.set(topic, [...new Set([...known, ...pipelines])]);
      }
    }
    return sources.flatMap((source) => [...answersTopicsOf(this.#pipelines, source).keys()]);
  }

  /** The pipelines whose tasks a record of `topic` answers; none for a topic that is no answers topic. */
  pipelinesFor(topic: string): readonly Pipeline[] {
    return this.#answered.get(topic) ?? [];
  }
}
