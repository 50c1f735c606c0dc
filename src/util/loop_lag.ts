/**
 * @module
 * How late this process's event loop runs now: a timer every 20 ms measures how far past due it
 * fires, and the last few delays are averaged. An answer that arrives while the loop is busy (with
 * a Kafka batch, say) waits about that long before it is read, which says nothing about whoever sent it.
 *
 * @example
 * ```ts
 * import { LoopLag } from "./loop_lag.ts";
 * const lag = new LoopLag();
 * lag.ms; // 0 at first; then a few ms, or tens while the process is saturated
 * lag.stop();
 * ```
 */

const TICK_MS = 20;
/** Weight of the newest delay in the average: about the last ten ticks count. */
const WEIGHT = 0.1;

export class LoopLag {
  #ms = 0;
  #timer: number;
  #due: number;

  constructor() {
    this.#due = performance.now() + TICK_MS;
    this.#timer = this.#schedule();
  }

  /** The recent average delay, in ms. */
  get ms(): number {
    return this.#ms;
  }

  #tick(): void {
    const now = performance.now();
    this.#ms += WEIGHT * (Math.max(0, now - this.#due) - this.#ms);
    this.#due = now + TICK_MS;
    this.#timer = this.#schedule();
  }

  #schedule(): number {
    // A number in Deno (the Node typings that npm packages bring in say otherwise).
    const timer = setTimeout(() => this.#tick(), TICK_MS) as unknown as number;
    Deno.unrefTimer(timer); // never what keeps a process alive
    return timer;
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}
