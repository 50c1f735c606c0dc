/**
 * @module
 * The budget of what waits behind commit points. One message that takes minutes holds its
 * partition's commit point while other keys keep flowing; what finishes behind it (with
 * exactly-once, every reply) waits in memory until that message ends. Once all of that reaches the
 * budget, each partition holding at least an even share of it (the budget ÷ the partitions holding
 * anything) pauses; it resumes when it holds less than half that share, as its commit point
 * passes what it held. A partition behind which nothing piles up never pauses, so one stuck key
 * stops its own partition, not the process.
 *
 * @example
 * ```ts
 * import { UncommittedBudget } from "./uncommitted_budget.ts";
 * const paused = new Set<string>();
 * const budget = new UncommittedBudget({
 *   budget: 1000,
 *   onPause: ({ topic, partition }) => paused.add(`${topic}/${partition}`),
 *   onResume: ({ topic, partition }) => paused.delete(`${topic}/${partition}`),
 * });
 * budget.check(1000, [
 *   { topic: "orders", partition: 0, head: "5", bytes: 900 },
 *   { topic: "orders", partition: 1, head: "9", bytes: 100 },
 * ]);
 * if (!paused.has("orders/0") || paused.has("orders/1")) throw new Error("only the partition that holds most");
 * budget.check(0, []);
 * if (paused.size) throw new Error("resumed once its commit point passed what it held");
 * ```
 */
import type { Holding } from "./ledger.ts";
import { partitionId } from "../model.ts";

export interface UncommittedBudgetOptions {
  /** Bytes that may wait behind commit points, in all (KAFKA_MAX_UNCOMMITTED_BYTES). */
  budget: number;
  /** A partition pauses: it holds `holding.bytes`, at least `share`. */
  onPause: (holding: Holding, share: number) => void;
  /** A paused partition resumes. */
  onResume: (partition: { topic: string; partition: number }) => void;
  /**
   * While the budget stays full, look at each partition again only once the total has moved this
   * many bytes since the last look (default: a 64th of the budget), unless a check is forced: checks
   * come with every message settled. Bounds both the work and how far the budget is overshot.
   */
  stepBytes?: number;
}

export class UncommittedBudget {
  readonly #options: UncommittedBudgetOptions;
  /** Paused partitions, with the share each paused at. */
  readonly #paused = new Map<string, { topic: string; partition: number; share: number }>();
  #lastTotal: number | undefined;

  constructor(options: UncommittedBudgetOptions) {
    this.#options = options;
  }

  /**
   * Pauses and resumes partitions for what they hold now. `total` is what all of them hold (cheap to
   * know), `holdings` what each holds (read only when needed). `force`: whatever `stepBytes` says
   * (what partitions hold has dropped: a commit, an assignment change).
   */
  check(total: number, holdings: readonly Holding[] | (() => readonly Holding[]), force = false): void {
    if (total < this.#options.budget && !this.#paused.size) {
      this.#lastTotal = undefined;
      return;
    }
    const step = this.#options.stepBytes ?? this.#options.budget / 64;
    if (!force && this.#lastTotal !== undefined && Math.abs(total - this.#lastTotal) < step) return;
    this.#lastTotal = total;
    const list = typeof holdings === "function" ? holdings() : holdings;
    const byId = new Map(list.map((holding) => [partitionId(holding.topic, holding.partition), holding]));
    for (const [id, paused] of this.#paused) {
      if ((byId.get(id)?.bytes ?? 0) < paused.share / 2) {
        this.#paused.delete(id);
        this.#options.onResume(paused);
      }
    }
    if (total < this.#options.budget) return;
    const share = this.#options.budget / Math.max(1, list.length);
    for (const [id, holding] of byId) {
      // A partition with nothing unfinished drains at the next commit: no need to pause it.
      if (holding.head === undefined || holding.bytes < share || this.#paused.has(id)) continue;
      this.#paused.set(id, { topic: holding.topic, partition: holding.partition, share });
      this.#options.onPause(holding, share);
    }
  }
}
