/**
 * The shape every in-process stage shares: an async iterable of jobs in, the same jobs out, with
 * jobs that already failed or were skipped passed on untouched.
 */
import { isLive, type Job } from "../model.ts";

/** A pipeline stage: `(jobs) => jobs`. */
export type Stage = (jobs: AsyncIterable<Job>) => AsyncIterable<Job>;

/** Makes a stage from a synchronous step that updates one live job in place. */
export function perJob(step: (job: Job) => void): Stage {
  return async function* (jobs) {
    for await (const job of jobs) {
      if (isLive(job)) step(job);
      yield job;
    }
  };
}
