/**
 * @module
 * decode: the message's bytes become a value. A record in a schema registry's wire format is
 * decoded with its registered schema (Avro, Protobuf, JSON Schema: see `source.format` and
 * src/registry/); any other as the pipeline's `decode` says: `json` (default), `text` (UTF-8), or
 * `bytes` (base64 text). Bytes that do not decode are a permanent failure, naming the schema id
 * where there is one. A registry that cannot answer is no failure of the record: the stage waits
 * and tries again (doubling pauses up to 30 s, one WARN line an outage), so nothing is
 * dead-lettered while it is down; a stop, or the job going stale, ends the wait.
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
import { Abandoned, failure } from "../errors.ts";
import { isLive, type Job } from "../model.ts";
import { type RecordDecoder, schemaIdOf, UndecodableRecord } from "../registry/wire.ts";
import type { abortableDelay } from "../util/abortable_delay.ts";
import { RegistryWaits } from "./registry_waits.ts";
import { mapUnordered } from "../util/concurrent.ts";
import { Turns } from "../util/turns.ts";
import { contain, perJob, type Stage } from "./stage.ts";

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

/** The decode stage, without a schema registry. */
export const decode = perJob("decode", decodeJob);

/**
 * The decode stage with a schema registry (see the module comment). `stopping` ends the waits for a
 * registry that cannot answer: the job is abandoned (neither published nor committed).
 */
export function decoder(
  options: { registry?: RecordDecoder; stopping?: AbortSignal; sleep?: typeof abortableDelay },
): Stage {
  const { registry } = options;
  if (!registry) return decode;
  const waits = new RegistryWaits(registry.url, "records", options);
  const decodeOne = async (job: Job): Promise<Job> => {
    const bytes = job.record.value;
    const { format } = job.pipeline;
    // auto: the wire format where JSON is expected (JSON text never starts with a zero byte), so
    // binary values (`decode: bytes`) that happen to start with one are never taken for it.
    const wire = bytes !== null && format !== "json" &&
      (format !== "auto" || (job.pipeline.decode === "json" && schemaIdOf(bytes) !== undefined));
    try {
      if (!wire) decodeJob(job);
      else {
        const expected = format === "auto" ? undefined : format;
        job.value = (await waits.call(job, () => registry.decode(job.ctx.topic, bytes!, expected))).value;
      }
    } catch (error) {
      if (error instanceof Abandoned) job.abandoned = true;
      else if (error instanceof UndecodableRecord) job.failure = failure("decode", "permanent", error.message);
      else contain(job, "decode", error);
    }
    return job;
  };
  // One pipeline after another would let a registry outage stall every pipeline: each pipeline's
  // records keep their order (each decoded, and passed on, after the one before it), and wait for
  // the registry without holding up another pipeline's.
  const turns = new Turns();
  return (jobs) =>
    mapUnordered(jobs, (job) => {
      if (!isLive(job) || job.answer) return Promise.resolve(job);
      return turns.take(job.pipeline.name, () => decodeOne(job));
    });
}
