/**
 * @module
 * transform: renders the route's template into the text the agent receives. Without a template
 * the value itself is sent (text as is, anything else as indented JSON). A placeholder with no
 * value is a permanent failure unless the route says `on_missing: empty`. A window's job is
 * rendered from its events: each one by `transform.each` (default: its JSON) into `{$events}`, then
 * the template (default: `{$events}` alone).
 *
 * @example
 * ```ts
 * import { transform } from "./transform.ts";
 * import { match } from "./match.ts";
 * import { decode } from "./decode.ts";
 * import { contextFor } from "../dispatch.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * import { parsePipelineText } from "../config/load_pipelines.ts";
 * const yaml = "name: p\nsource: {topics: [t]}\nroutes: [{name: r, transform: {template: 'Order {id}'}, invoke: {prompt_id: x}}]\n";
 * const [p] = parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const value = new TextEncoder().encode('{"id":"A-1"}');
 * const record = { topic: "t", partition: 0, offset: "0", key: null, value, headers: {}, timestamp: "0" };
 * const jobs = ReadableStream.from([{ record, ctx: contextFor(p, record), pipeline: p, ack: unledgered }]);
 * for await (const job of transform(match(decode(jobs)))) if (job.text !== "Order A-1") throw new Error(job.text);
 * ```
 */
import { failure, type StageFailure } from "../errors.ts";
import { jointAck } from "../delivery/ledger.ts";
import { isLive, type Job, type Route } from "../model.ts";
import { renderTemplate } from "../template.ts";
import { lookup } from "../placeholders.ts";
import { contain } from "./stage.ts";
import { jsonText } from "../util/json_text.ts";

/**
 * A value as indented JSON; as compact JSON when indenting is out of reach (indented text grows with
 * the square of the depth: 12 kB nested 6,000 deep would be 72 MB).
 */
function indentedJson(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? "null";
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return jsonText(value);
  }
}

/** The failure of a template that has no value for `missing`. */
function missingFields(missing: readonly string[], where = "template"): StageFailure {
  return failure(
    "transform",
    "permanent",
    `${where} field${missing.length > 1 ? "s" : ""} missing: ${missing.join(", ")}`,
  );
}

/** Transforms one job in place (a window's job: see {@link transformWindow}). */
export function transformJob(job: Job): void {
  const route = job.route!;
  if (!route.template) {
    job.text = job.window ? job.window.events : typeof job.value === "string" ? job.value : indentedJson(job.value);
    return;
  }
  const { text, missing } = renderTemplate(route.template, (path) => lookup(job, path));
  if (missing.length && route.onMissing === "error") {
    job.failure = missingFields(missing);
    return;
  }
  job.text = text;
}

/** One event of a window as a line of `{$events}`: `transform.each`, else its value as JSON. */
function eventLine(route: Route, event: Job): { text: string; missing: string[] } {
  if (!route.each) return { text: jsonText(event.value ?? null), missing: [] };
  return renderTemplate(route.each, (path) => lookup(event, path));
}

/**
 * Transforms a window's job: renders each event (`transform.each`) and then the text. An event
 * `transform.each` has no value for fails on its own (its DLQ record is its own) and leaves the
 * window, which goes on with the rest; the jobs returned are those failed events and the window.
 */
export function transformWindow(job: Job): Job[] {
  const route = job.route!;
  const lines: string[] = [];
  const kept: Job[] = [];
  const failed: Job[] = [];
  for (const event of job.window!.members) {
    const { text, missing } = eventLine(route, event);
    if (missing.length && route.onMissing === "error") {
      event.failure = missingFields(missing, "transform.each");
      failed.push(event);
    } else {
      lines.push(text);
      kept.push(event);
    }
  }
  if (!kept.length) {
    job.span?.end(); // the window's: its events end their own
    return failed;
  }
  const window = { ...job.window!, members: kept, events: lines.join("\n") };
  // With events gone, a job of its own: its ack is the remaining events'.
  const rest = failed.length ? { ...job, ack: jointAck(kept.map((event) => event.ack)) } : job;
  rest.window = window;
  transformJob(rest);
  return [...failed, rest];
}

/** The transform stage. */
export async function* transform(jobs: AsyncIterable<Job>): AsyncIterable<Job> {
  for await (const job of jobs) {
    let out = [job];
    // An answer's text is the answer itself (see answers.ts).
    if (isLive(job) && !job.answer) {
      try {
        if (job.window) out = transformWindow(job);
        else transformJob(job);
      } catch (error) {
        contain(job, "transform", error);
      }
    }
    yield* out;
  }
}
