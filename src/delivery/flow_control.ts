/**
 * @module
 * Flow control: which topics are fetched now. A topic is paused while any {@link PauseReason} that
 * covers it holds:
 * - `in-flight`: the process holds its cap of unfinished messages (every topic);
 * - `claiming`: exactly-once partitions are being taken over after a join (every topic);
 * - `pipeline`: a pipeline holds its own cap of unfinished jobs (the topics that pipeline reads);
 * - `circuit`: an agent's circuit is open, because it is down or refuses the bridge (the topics
 *   whose pipelines call it);
 * - `output`: an output topic cannot be written (the topics of the pipelines that write it);
 * - `held`: a partition holds too much behind its commit point (that partition only: a reason may
 *   cover partitions, named by {@link partitionId}, as well as topics).
 * So one agent's trouble, or one slow pipeline, pauses only its own topics; the others flow.
 * A pipeline's cap resumes at half of it, so fetching does not flap.
 *
 * @example
 * ```ts
 * import { FlowControl } from "./flow_control.ts";
 * const paused: string[][] = [];
 * const flow = new FlowControl({
 *   topicsOf: (reason) => reason.kind === "circuit" ? ["crm.events"] : ["crm.events", "orders"],
 *   apply: (topics) => paused.push([...topics]),
 * });
 * flow.set({ kind: "circuit", key: "agent http://crm" }, true);
 * if (!flow.paused("crm.events") || flow.paused("orders")) throw new Error("only the agent's topics");
 * flow.set({ kind: "circuit", key: "agent http://crm" }, false);
 * if (paused.at(-1)!.length !== 0) throw new Error("resumed");
 * ```
 */
import { partitionId } from "../model.ts";

/** Why topics (or partitions) are paused: see the module comment. */
export type PauseReason =
  | { readonly kind: "in-flight" }
  | { readonly kind: "claiming" }
  | { readonly kind: "pipeline"; readonly pipeline: string }
  | { readonly kind: "circuit"; readonly key: string }
  | { readonly kind: "output"; readonly topic: string }
  | { readonly kind: "held"; readonly topic: string; readonly partition: number };

/** A reason as text: its identity among the reasons, and how logs name it. */
export function describeReason(reason: PauseReason): string {
  switch (reason.kind) {
    case "in-flight":
    case "claiming":
      return reason.kind;
    case "pipeline":
      return `pipeline ${reason.pipeline}`;
    case "circuit":
      return `circuit ${reason.key}`;
    case "output":
      return `output ${reason.topic}`;
    case "held":
      return `held ${partitionId(reason.topic, reason.partition)}`;
  }
}

export interface FlowControlOptions {
  /** The topics (or partitions, as {@link partitionId}s) a reason pauses, among those consumed now. */
  topicsOf: (reason: PauseReason) => readonly string[];
  /** Called with the whole set of paused topics and partitions whenever it changes. */
  apply: (paused: ReadonlySet<string>) => void;
}

export class FlowControl {
  #options: FlowControlOptions | undefined;
  readonly #reasons = new Map<string, PauseReason>();
  #paused: ReadonlySet<string> = new Set();

  /** Without `options`, reasons are only noted until {@link attach} says what they pause and how. */
  constructor(options?: FlowControlOptions) {
    this.#options = options;
  }

  /** Says what reasons pause and how; the reasons noted so far take effect now. */
  attach(options: FlowControlOptions): void {
    this.#options = options;
    this.refresh();
  }

  /** The reasons that hold now. */
  get reasons(): readonly PauseReason[] {
    return [...this.#reasons.values()];
  }

  /** Whether `reason` holds now. */
  holds(reason: PauseReason): boolean {
    return this.#reasons.has(describeReason(reason));
  }

  /** Whether `topic` is paused now (or, given `partition`, whether that partition is: its own pause or its topic's). */
  paused(topic: string, partition?: number): boolean {
    return this.#paused.has(topic) || (partition !== undefined && this.#paused.has(partitionId(topic, partition)));
  }

  /** Turns a reason on or off; returns whether it changed. */
  set(reason: PauseReason, on: boolean): boolean {
    const key = describeReason(reason);
    if (on === this.#reasons.has(key)) return false;
    if (on) this.#reasons.set(key, reason);
    else this.#reasons.delete(key);
    this.refresh();
    return true;
  }

  /**
   * Turns a cap's reason on at `count >= cap` and off at `count <= resumeAt` (default: half the
   * cap); returns true when it turned on now.
   */
  cap(reason: PauseReason, count: number, cap: number, resumeAt = cap / 2): boolean {
    if (count >= cap) return this.set(reason, true);
    if (count <= resumeAt) this.set(reason, false);
    return false;
  }

  /** Works out the paused topics again (the reasons' topics may have changed, e.g. new subscriptions). */
  refresh(): void {
    if (!this.#options) return;
    const paused = new Set<string>();
    for (const reason of this.#reasons.values()) {
      for (const topic of this.#options.topicsOf(reason)) paused.add(topic);
    }
    const same = paused.size === this.#paused.size && [...paused].every((topic) => this.#paused.has(topic));
    this.#paused = paused;
    if (!same) this.#options.apply(paused);
  }
}
