/**
 * transform: renders the route's template into the text the agent receives. Without a template
 * the value itself is sent (text as is, anything else as indented JSON). A placeholder with no
 * value is a permanent failure unless the route says `on_missing: empty`.
 *
 * @example
 * ```ts
 * import { transform } from "./transform.ts";
 * // for await (const job of transform(match(decode(jobs)))) job.text
 * ```
 */
import { failure } from "../errors.ts";
import type { Job } from "../model.ts";
import { renderTemplate } from "../template.ts";
import { lookup } from "../placeholders.ts";
import { perJob } from "./stage.ts";

/** Transforms one job in place. */
export function transformJob(job: Job): void {
  const route = job.route!;
  if (!route.template) {
    job.text = typeof job.value === "string" ? job.value : JSON.stringify(job.value, null, 2);
    return;
  }
  const { text, missing } = renderTemplate(route.template, (path) => lookup(job, path));
  if (missing.length && route.onMissing === "error") {
    job.failure = failure(
      "transform",
      "permanent",
      `template field${missing.length > 1 ? "s" : ""} missing: ${missing.join(", ")}`,
    );
    return;
  }
  job.text = text;
}

/** The transform stage. */
export const transform = perJob(transformJob);
