/**
 * @module
 * The median of the last `size` durations recorded, for "slow compared with usual" decisions. It is
 * asked for once per message, so it is sorted afresh only after a tenth of the window is new.
 *
 * @example
 * ```ts
 * import { LatencyWindow } from "./latency_window.ts";
 * const window = new LatencyWindow(5);
 * for (const ms of [100, 120, 90, 5000, 110]) window.record(ms);
 * if (window.median() !== 110) throw new Error("one slow call does not move the median");
 * ```
 */
export class LatencyWindow {
  readonly #samples: number[] = [];
  #next = 0;
  #median: number | undefined;
  /** Samples recorded since the median was last sorted out. */
  #fresh = 0;

  constructor(readonly size = 100) {}

  record(ms: number): void {
    if (this.#samples.length < this.size) this.#samples.push(ms);
    else this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % this.size;
    this.#fresh++;
  }

  /** The median, or `undefined` before the first sample. */
  median(): number | undefined {
    if (!this.#samples.length) return undefined;
    if (this.#median === undefined || this.#fresh * 10 >= this.#samples.length) {
      const sorted = [...this.#samples].sort((a, b) => a - b);
      this.#median = sorted[Math.floor(sorted.length / 2)];
      this.#fresh = 0;
    }
    return this.#median;
  }
}
