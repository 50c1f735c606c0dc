/**
 * @module
 * Flow control: which topics are fetched now. A topic is paused while any reason that covers it
 * holds:
 * - `in-flight`: the process holds its cap of unfinished messages (every topic);
 * - a pipeline holds its own cap of unfinished jobs (the topics that pipeline reads);
 * - an agent's circuit is open, because it is down or refuses the bridge (the topics whose
 *   pipelines call it);
 * - a partition holds too much behind its commit point (that partition only: a reason may cover
 *   partitions, named by {@link partitionId}, as well as topics).
 * So one agent's trouble, or one slow pipeline, pauses only its own topics; the others flow.
 * A pipeline's cap resumes at half of it, so fetching does not flap.
 *
 * @example
 * ```ts
 * import { FlowControl } from "./flow_control.ts";
 * const paused: string[][] = [];
 * const flow = new FlowControl({
 *   topicsOf: (reason) => reason === "circuit crm" ? ["crm.events"] : ["crm.events", "orders"],
 *   apply: (topics) => paused.push([...topics]),
 * });
 * flow.set("circuit crm", true);
 * if (!flow.paused("crm.events") || flow.paused("orders")) throw new Error("only the agent's topics");
 * flow.set("circuit crm", false);
 * if (paused.at(-1)!.length !== 0) throw new Error("resumed");
 * ```
 */
import { partitionId } from "./model.ts";

export interface FlowControlOptions {
  /** The topics (or partitions, as {@link partitionId}s) a reason pauses, among those consumed now. */
  topicsOf: (reason: string) => readonly string[];
  /** Called with the whole set of paused topics and partitions whenever it changes. */
  apply: (paused: ReadonlySet<string>) => void;
}

export class FlowControl {
  readonly #options: FlowControlOptions;
  readonly #reasons = new Set<string>();
  #paused: ReadonlySet<string> = new Set();

  constructor(options: FlowControlOptions) {
    this.#options = options;
  }

  /** The reasons that hold now. */
  get reasons(): ReadonlySet<string> {
    return this.#reasons;
  }

  /** Whether `topic` is paused now (or, given `partition`, whether that partition is: its own pause or its topic's). */
  paused(topic: string, partition?: number): boolean {
    return this.#paused.has(topic) || (partition !== undefined && this.#paused.has(partitionId(topic, partition)));
  }

  /** Turns a reason on or off; returns whether it changed. */
  set(reason: string, on: boolean): boolean {
    if (on === this.#reasons.has(reason)) return false;
    if (on) this.#reasons.add(reason);
    else this.#reasons.delete(reason);
    this.refresh();
    return true;
  }

  /**
   * Turns a cap's reason on at `count >= cap` and off at `count <= resumeAt` (default: half the
   * cap); returns true when it turned on now.
   */
  cap(reason: string, count: number, cap: number, resumeAt = cap / 2): boolean {
    if (count >= cap) return this.set(reason, true);
    if (count <= resumeAt) this.set(reason, false);
    return false;
  }

  /** Works out the paused topics again (the reasons' topics may have changed, e.g. new subscriptions). */
  refresh(): void {
    const paused = new Set<string>();
    for (const reason of this.#reasons) {
      for (const topic of this.#options.topicsOf(reason)) paused.add(topic);
    }
    const same = paused.size === this.#paused.size && [...paused].every((topic) => this.#paused.has(topic));
    this.#paused = paused;
    if (!same) this.#options.apply(paused);
  }
}
