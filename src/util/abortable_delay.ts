/**
 * Waits `ms`, or less when `signal` aborts: resolves either way (a stop does not wait out a retry
 * pause or a poll interval), and leaves no timer or listener behind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { abortableDelay } from "./abortable_delay.ts";
 * const abort = new AbortController();
 * const started = Date.now();
 * const waiting = abortableDelay(60_000, abort.signal);
 * abort.abort();
 * await waiting;
 * assert.ok(Date.now() - started < 1_000);
 * ```
 *
 * @module
 */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done, { once: true });
  });
}
