/**
 * @module
 * What every stage shares: an async iterable of jobs in, the same jobs out, with jobs that already
 * failed or were skipped passed on untouched, and one place ({@link contain}) that turns an
 * exception thrown for one job into that job's `internal` failure, so no input stops the bridge.
 *
 * @example
 * ```ts
 * import { perJob } from "./stage.ts";
 * const shout = perJob("transform", (job) => {
 *   if (job.text === undefined) throw new Error("nothing to shout");
 *   job.text = job.text.toUpperCase();
 * });
 * const jobs = [{ text: "hi" }, {}] as unknown as import("../model.ts").Job[];
 * const out = await Array.fromAsync(shout(ReadableStream.from(jobs)));
 * if (out[0].text !== "HI" || out[1].failure?.class !== "internal") throw new Error("contained");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage, failure, type StageName } from "../errors.ts";
import { isLive, type Job } from "../model.ts";

const log = getLogger(["agentstream", "stage"]);

/** A pipeline stage: `(jobs) => jobs`. */
export type Stage = (jobs: AsyncIterable<Job>) => AsyncIterable<Job>;

/**
 * Records `error`, thrown by `stage` while handling `job`, as the job's `internal` failure: the job
 * goes to the DLQ with the error in its headers, the stack goes to the log, and the process lives.
 */
export function contain(job: Job, stage: StageName, error: unknown): Job {
  log.error("{stage} failed on {topic}@{offset}: {error}", {
    stage,
    topic: job.ctx?.topic,
    partition: job.ctx?.partition,
    offset: job.ctx?.offset,
    error: errorMessage(error),
    stack: error instanceof Error ? error.stack : undefined,
  });
  job.failure = failure(stage, "internal", `${stage} threw: ${errorMessage(error)}`, {
    attempts: job.reply?.attempts ?? job.failure?.attempts ?? 0,
  });
  return job;
}

/** Makes a stage from a synchronous step that updates one live job in place. */
export function perJob(stage: StageName, step: (job: Job) => void): Stage {
  return async function* (jobs) {
    for await (const job of jobs) {
      if (isLive(job)) {
        try {
          step(job);
        } catch (error) {
          contain(job, stage, error);
        }
      }
      yield job;
    }
  };
}

/** Runs an asynchronous step for one job; what it throws becomes the job's `internal` failure. */
export async function guarded(stage: StageName, job: Job, step: (job: Job) => Promise<Job>): Promise<Job> {
  try {
    return await step(job);
  } catch (error) {
    return contain(job, stage, error);
  }
}
