/**
 * @module
 * The median of the last `size` durations recorded, for "slow compared with usual" decisions.
 *
 * @example
 * ```ts
 * import { LatencyWindow } from "./latency_window.ts";
 * const window = new LatencyWindow(5);
 * for (const ms of [100, 120, 90, 5000, 110]) window.record(ms);
 * window.median(); // 110
 * ```
 */
export class LatencyWindow {
  readonly #samples: number[] = [];
  #next = 0;

  constructor(readonly size = 100) {}

  record(ms: number): void {
    if (this.#samples.length < this.size) this.#samples.push(ms);
    else this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % this.size;
  }

  /** The median, or `undefined` before the first sample. */
  median(): number | undefined {
    if (!this.#samples.length) return undefined;
    const sorted = [...this.#samples].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }
}
