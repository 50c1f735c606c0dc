/**
 * @module
 * decode: the message's bytes become a value, as the pipeline's `decode` says: `json` (default),
 * `text` (UTF-8), or `bytes` (base64 text). Bytes that do not decode are a permanent failure.
 *
 * @example
 * ```ts
 * import { decode } from "./decode.ts";
 * import { contextFor } from "../dispatch.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * import { parsePipelineText } from "../config/load_pipelines.ts";
 * const yaml = "name: p\nsource: {topics: [t]}\nroutes: [{name: r, transform: {template: 'Order {id}'}, invoke: {prompt_id: x}}]\n";
 * const [p] = parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const value = new TextEncoder().encode('{"id":"A-1"}');
 * const record = { topic: "t", partition: 0, offset: "0", key: null, value, headers: {}, timestamp: "0" };
 * const jobs = ReadableStream.from([{ record, ctx: contextFor(p, record), pipeline: p, ack: unledgered }]);
 * for await (const job of decode(jobs)) if ((job.value as { id: string }).id !== "A-1") throw new Error("parsed");
 * ```
 */
import { failure } from "../errors.ts";
import type { Job } from "../model.ts";
import { perJob } from "./stage.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes one job's value in place. */
export function decodeJob(job: Job): void {
  // An answer's body is read by the answers stage.
  if (job.answer) return;
  const bytes = job.record.value;
  if (bytes === null) {
    job.failure = failure("decode", "permanent", "message has no value (a tombstone)");
    return;
  }
  if (job.pipeline.decode === "bytes") {
    job.value = btoa(Array.from(bytes, (byte) => String.fromCharCode(byte)).join(""));
    return;
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    job.failure = failure("decode", "permanent", "value is not valid UTF-8");
    return;
  }
  if (job.pipeline.decode === "text") {
    job.value = text;
    return;
  }
  try {
    job.value = JSON.parse(text);
  } catch (error) {
    job.failure = failure("decode", "permanent", `value is not valid JSON: ${(error as Error).message}`);
  }
}

/** A value as its pipeline decodes it; undefined where it does not decode. */
export function decodeValue(pipeline: Job["pipeline"], bytes: Uint8Array): unknown {
  const probe = { record: { value: bytes }, pipeline } as Job;
  decodeJob(probe);
  return probe.failure ? undefined : probe.value;
}

/** The decode stage. */
export const decode = perJob("decode", decodeJob);
