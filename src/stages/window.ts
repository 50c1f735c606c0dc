/**
 * @module
 * window: many events, one agent call. A route with `window: {by, size, max_events}` gathers its
 * events in tumbling windows, one per key (or per partition) of each partition: the first event
 * opens a window, which closes `size` later or at `max_events`, whichever comes first. A closed
 * window goes on as one job (see {@link windowJob}) whose ack is all of its events' acks, so none
 * of them is committed before the window's reply, or its DLQ records, are durable. Events of other
 * keys, of routes without a window, and failed or skipped ones flow past.
 *
 * Windows never span partitions: a window's reply and the offsets it settles then commit together
 * (in one transaction with exactly-once), and a partition that moves takes its uncommitted events to
 * its new owner, which windows them again. A window whose events went stale (the assignment
 * changed) is dropped; at a stop, open windows are left uncommitted for the next run.
 *
 * @example
 * ```ts
 * import { window } from "./window.ts";
 * import { match } from "./match.ts";
 * import { decode } from "./decode.ts";
 * import { contextFor } from "../dispatch.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * import { parsePipelineText } from "../config/load_pipelines.ts";
 * const yaml = "name: p\nsource: {topics: [t]}\n" +
 *   "routes: [{name: r, window: {size: 1m, max_events: 2}, invoke: {prompt_id: x}}]\n";
 * const [p] = parsePipelineText("p.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 10 }).pipelines;
 * const event = (offset: string, key: string) => {
 *   const value = new TextEncoder().encode(`{"n":${offset}}`);
 *   const record = { topic: "t", partition: 0, offset, key: new TextEncoder().encode(key), value, headers: {}, timestamp: "0" };
 *   return { record, ctx: contextFor(p, record), pipeline: p, ack: unledgered };
 * };
 * const jobs = ReadableStream.from([event("0", "a"), event("1", "b"), event("2", "a")]);
 * const out = await Array.fromAsync(window(match(decode(jobs))));
 * // a's window closed at max_events; b's was still open when the input ended: left for the next run.
 * if (out[0].window?.members.length !== 2 || out[0].ctx.key !== "a") throw new Error("a's two events");
 * if (!out[1].abandoned || out[1].ctx.key !== "b") throw new Error("b's event, uncommitted");
 * ```
 */
import { messageIdFor } from "../dispatch.ts";
import { jointAck } from "../delivery/ledger.ts";
import { isLive, type Job, type WindowSpec } from "../model.ts";
import { startMessageSpan } from "../ops/tracing.ts";
import { Channel } from "../util/channel.ts";

const encoder = new TextEncoder();

export interface WindowOptions {
  /**
   * Whether `pipeline` is paused at its cap while its open windows hold `held` events: then its
   * oldest windows close until it is not, so that windows waiting to fill cannot stall it.
   */
  crowded?: (pipeline: string, held: number) => boolean;
  /** The same for the whole process: `held` events in open windows of every pipeline. */
  full?: (held: number) => boolean;
  /**
   * The partition's lowest unfinished offset when too many finished messages wait behind it to be
   * committed (their offsets, and with exactly-once their replies, are held in memory): windows that
   * start there close early.
   */
  pinned?: (topic: string, partition: number) => string | undefined;
}

/** The window stage's output, and a way to close early what the caps need closed. */
export interface WindowStage extends AsyncIterable<Job> {
  /** Closes the oldest windows of every pipeline (or of the process) that `crowded` (`full`) says is stalled. */
  relieve(): void;
  /**
   * Drops the windows whose events went stale (their partition was revoked): at once, not when the
   * next event or the timer comes. Their events are passed on abandoned; Kafka delivers them again.
   */
  dropStale(): void;
}

interface OpenWindow {
  readonly id: string;
  readonly pipeline: string;
  readonly members: Job[];
  readonly start: Date;
  timer?: ReturnType<typeof setTimeout>;
}

/** Which window an event of a windowed route belongs to: its route, partition, and key if by key. */
function windowId(job: Job, spec: WindowSpec): string {
  const { ctx } = job;
  const where = `${job.route!.name}\u0000${ctx.topic}\u0000${ctx.partition}`;
  if (spec.by === "partition") return where;
  return ctx.key === null ? `${where}\u0001` : `${where}\u0000${ctx.key}`;
}

/** The window stage. */
export function window(jobs: AsyncIterable<Job>, options: WindowOptions = {}): WindowStage {
  const out = new Channel<Job>();
  // Per pipeline, in the order they opened: the first is the oldest.
  const open = new Map<string, Map<string, OpenWindow>>();
  const held = new Map<string, number>();
  let total = 0;
  const hold = (pipeline: string, change: number) => {
    held.set(pipeline, (held.get(pipeline) ?? 0) + change);
    total += change;
  };
  const oldest = (pipeline?: string): OpenWindow | undefined => {
    if (pipeline !== undefined) return open.get(pipeline)?.values().next().value;
    const firsts = [...open.values()].flatMap((windows) => [...windows.values()].slice(0, 1));
    return firsts.reduce<OpenWindow | undefined>((a, b) => (!a || b.start < a.start ? b : a), undefined);
  };

  const close = (win: OpenWindow) => {
    const windows = open.get(win.pipeline);
    if (windows?.get(win.id) !== win) return;
    windows.delete(win.id);
    clearTimeout(win.timer);
    hold(win.pipeline, -win.members.length);
    // Stale events are delivered again by Kafka (to whichever member owns their partition now).
    if (win.members[0].ack.stale) abandon(win);
    else void out.send(windowJob(win.members, win.start, new Date()));
  };
  /** Passes the window's events on unfinished: they stay uncommitted, and come again. */
  const abandon = (win: OpenWindow) => {
    clearTimeout(win.timer);
    for (const member of win.members) void out.send(Object.assign(member, { abandoned: true }));
  };
  /** Closes the oldest windows while a cap they fill is stalled (level-triggered: any change may call it). */
  const relieve = () => {
    for (const pipeline of open.keys()) {
      for (let win; options.crowded?.(pipeline, held.get(pipeline) ?? 0) && (win = oldest(pipeline));) close(win);
    }
    for (let win; options.full?.(total) && (win = oldest());) close(win);
  };
  /** Closes the windows that start at the offset holding back `job`'s partition's commits, if too much waits. */
  const unpin = ({ ctx: { topic, partition } }: Job) => {
    const head = total ? options.pinned?.(topic, partition) : undefined;
    if (head === undefined) return;
    // A window holding the lowest unfinished offset starts there (of every pipeline reading the topic).
    const pins = [...open.values()].flatMap((windows) => [...windows.values()]).filter(({ members: [first] }) =>
      first.ctx.offset === head && first.ctx.partition === partition && first.ctx.topic === topic
    );
    pins.forEach(close);
  };

  (async () => {
    try {
      for await (const job of jobs) {
        // An answer goes on to its task at once: the window its message was in is long closed.
        const spec = isLive(job) && !job.answer ? job.route?.window : undefined;
        if (spec) add(job, spec);
        else void out.send(job);
        relieve();
        unpin(job);
      }
      // The input ended: the bridge is stopping. Open windows are left for the next run.
      for (const windows of open.values()) windows.forEach(abandon);
      open.clear();
      out.close();
    } catch (error) {
      for (const windows of open.values()) windows.forEach((win) => clearTimeout(win.timer));
      out.fail(error);
    }
  })();

  function add(job: Job, spec: WindowSpec): void {
    const id = windowId(job, spec);
    const windows = open.get(job.ctx.pipeline) ?? open.set(job.ctx.pipeline, new Map()).get(job.ctx.pipeline)!;
    let win = windows.get(id);
    if (win && win.members[0].ack.stale) close(win);
    win = windows.get(id);
    if (!win) {
      const opened: OpenWindow = { id, pipeline: job.ctx.pipeline, members: [], start: new Date() };
      opened.timer = setTimeout(() => close(opened), spec.sizeMs);
      windows.set(id, win = opened);
    }
    win.members.push(job);
    hold(win.pipeline, 1);
    if (win.members.length >= spec.maxEvents) close(win);
  }

  const dropStale = () => {
    for (const windows of [...open.values()]) {
      for (const win of [...windows.values()]) if (win.members[0].ack.stale) close(win);
    }
  };

  return Object.assign(out, { relieve, dropStale });
}

/**
 * The job of a closed window: its first event's context, with the window key as its key (the
 * partition number for `by: partition`), a message id of its own (the same whenever the same events
 * form it again), and one ack for every event.
 */
export function windowJob(members: readonly Job[], start: Date, end: Date): Job {
  const [first, last] = [members[0], members[members.length - 1]];
  const byKey = first.route!.window!.by === "key";
  const key = byKey ? first.ctx.key : String(first.ctx.partition);
  const range = { ...first.record, offset: `${first.ctx.offset}-${last.ctx.offset}` };
  const messageId = messageIdFor(first.pipeline.name, range);
  const job: Job = {
    record: { ...first.record, key: byKey ? first.record.key : encoder.encode(key!) },
    ctx: { ...first.ctx, key, messageId, correlationId: first.ctx.headers["x-correlation-id"] ?? messageId },
    pipeline: first.pipeline,
    route: first.route,
    value: first.value,
    ack: jointAck(members.map((member) => member.ack)),
    window: { key, start: start.toISOString(), end: end.toISOString(), members },
  };
  startMessageSpan(job);
  return job;
}
