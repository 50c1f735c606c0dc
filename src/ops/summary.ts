/**
 * @module
 * The progress line: what the bridge did since the last line, once per interval in which it did
 * something, at INFO. Lines per message are DEBUG: at thousands of messages a second they would
 * cost more than the work, and nobody reads them (Kafka's own tools report the same way).
 *
 * @example
 * ```ts
 * import { summaryLine } from "./summary.ts";
 * const before = { consumed: 0, replied: 0, deadLettered: 0, skipped: 0, dropped: 0 };
 * const now = { consumed: 310, replied: 300, deadLettered: 2, skipped: 8, dropped: 0 };
 * const line = summaryLine(before, now, 10_000, 40);
 * if (line !== "last 10 s: 300 replied (30.0/s), 2 dead-lettered, 8 skipped; 40 in flight") throw new Error(line);
 * ```
 */
import { getLogger } from "@logtape/logtape";

const log = getLogger(["agentstream", "progress"]);

/** The counters the line reports on. */
export interface Counts {
  consumed: number;
  replied: number;
  deadLettered: number;
  skipped: number;
  dropped: number;
}

/** The line for the change from `before` to `now` over `ms`; undefined when nothing happened. */
export function summaryLine(before: Counts, now: Counts, ms: number, inFlight: number): string | undefined {
  const delta = (key: keyof Counts) => now[key] - before[key];
  if (delta("consumed") === 0 && delta("replied") === 0 && delta("deadLettered") === 0) return undefined;
  const parts = [`${delta("replied")} replied (${(delta("replied") / (ms / 1000)).toFixed(1)}/s)`];
  if (delta("deadLettered")) parts.push(`${delta("deadLettered")} dead-lettered`);
  if (delta("skipped")) parts.push(`${delta("skipped")} skipped`);
  if (delta("dropped")) parts.push(`${delta("dropped")} lost (the DLQ refused them)`);
  return `last ${Math.round(ms / 1000)} s: ${parts.join(", ")}; ${inFlight} in flight`;
}

/** Logs {@link summaryLine} every `intervalMs` (0: never); returns the function that stops it. */
export function startSummary(counts: () => Counts, inFlight: () => number, intervalMs: number): () => void {
  if (intervalMs <= 0) return () => {};
  let before = { ...counts() };
  let at = performance.now();
  const timer = setInterval(() => {
    const now = { ...counts() };
    const ms = performance.now() - at;
    const line = summaryLine(before, now, ms, inFlight());
    if (line) log.info(line);
    before = now;
    at += ms;
  }, intervalMs);
  return () => clearInterval(timer);
}
