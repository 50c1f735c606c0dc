/**
 * fan-out: a job whose route names several agents becomes one job per agent, each called in
 * parallel and published on its own (the envelope names its agent). The first keeps the message's
 * id; the others get ids of their own, derived from it, so each call is recognisable on a
 * redelivery. The source message is finished only when every one of them has its outcome:
 * `split` tells the offset tracker how many more to wait for.
 *
 * @example
 * ```ts
 * import { fanOut } from "./fan_out.ts";
 * // invoke(fanOut(transform(...), (job, extra) => tracker.register(topic, partition, offset, extra)))
 * ```
 */
import { isLive, type Job } from "../model.ts";
import { startMessageSpan } from "../ops/tracing.ts";
import { nameBasedUuid } from "../util/uuid.ts";

/**
 * Called before a job is split into `1 + extra` jobs; returns false when it must not be (a job of
 * a generation that a rebalance dropped: it is abandoned downstream anyway).
 */
export type SplitHook = (job: Job, extra: number) => boolean;

/** The fan-out stage. */
export async function* fanOut(jobs: AsyncIterable<Job>, split: SplitHook = () => true): AsyncIterable<Job> {
  for await (const job of jobs) {
    const agents = job.route?.agents ?? [];
    if (!isLive(job) || agents.length < 2 || !split(job, agents.length - 1)) {
      yield job;
      continue;
    }
    // All copies first: once a job is yielded, invoke may fill it in while this waits.
    const copies = agents.slice(1).map((agent, index): Job => ({
      ...job,
      agent,
      span: undefined,
      ctx: { ...job.ctx, messageId: nameBasedUuid(`${job.ctx.messageId}\n${index + 1}`) },
    }));
    copies.forEach(startMessageSpan);
    yield Object.assign(job, { agent: agents[0] });
    yield* copies;
  }
}
