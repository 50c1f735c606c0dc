/**
 * @module
 * fan-out: a job whose route names several agents becomes one job per agent, each called in
 * parallel and published on its own (the envelope names its agent). The first keeps the message's
 * id; the others get ids of their own, derived from it, so each call is recognisable on a
 * redelivery. The source message is finished only when every one of them has its outcome: each
 * copy gets an ack split from the job's (see src/delivery/ledger.ts).
 *
 * @example
 * ```ts
 * import { fanOut } from "./fan_out.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * const job = { ack: unledgered, ctx: { messageId: "m" }, route: { agents: [{ promptId: "a" }, { promptId: "b" }] } };
 * const jobs = await Array.fromAsync(fanOut(ReadableStream.from([job as unknown as import("../model.ts").Job])));
 * if (jobs.map((j) => j.agent?.promptId).join() !== "a,b") throw new Error("one job per agent");
 * ```
 */
import { isLive, type Job } from "../model.ts";
import { startMessageSpan } from "../ops/tracing.ts";
import { nameBasedUuid } from "../util/uuid.ts";

/** The fan-out stage. */
export async function* fanOut(jobs: AsyncIterable<Job>): AsyncIterable<Job> {
  for await (const job of jobs) {
    // An answer goes to the one agent whose task asked.
    const agents = job.answer ? [] : job.route?.agents ?? [];
    // A stale job is not split: it is abandoned downstream anyway.
    const acks = isLive(job) && agents.length > 1 ? job.ack.split(agents.length - 1) : undefined;
    if (!acks) {
      yield job;
      continue;
    }
    // All copies first: once a job is yielded, invoke may fill it in while this waits.
    const copies = agents.slice(1).map((agent, index): Job => ({
      ...job,
      agent,
      ack: acks[index],
      span: undefined,
      ctx: { ...job.ctx, messageId: nameBasedUuid(`${job.ctx.messageId}\n${index + 1}`) },
    }));
    copies.forEach(startMessageSpan);
    yield Object.assign(job, { agent: agents[0] });
    yield* copies;
  }
}
