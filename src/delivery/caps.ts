/**
 * @module
 * The caps on what the process takes in: unfinished messages (the process's `KAFKA_MAX_IN_FLIGHT`
 * and each pipeline's share), and bytes waiting behind commit points (`KAFKA_MAX_UNCOMMITTED_BYTES`,
 * see {@link UncommittedBudget}). Checked whenever work is taken in or settled; each cap that holds
 * is a {@link PauseReason} in flow control, and {@link Caps.room} says how much of a partition may
 * be taken in now. Open windows waiting to fill a cap that holds are told to close early
 * ({@link Caps.windowing}, {@link Caps.onHold}).
 *
 * @example
 * ```ts
 * import { Caps } from "./caps.ts";
 * import { FlowControl } from "./flow_control.ts";
 * import { Ledger } from "./ledger.ts";
 * const ledger = new Ledger();
 * const flow = new FlowControl({ topicsOf: () => ["t"], apply: () => {} });
 * const caps = new Caps({ ledger, flow, pipelines: [], targets: () => [], maxInFlight: 2, maxUncommittedBytes: 1e6 });
 * ledger.receive("t", 0, ["0", "1"], ["p"]);
 * caps.check();
 * if (!flow.paused("t") || caps.room("t", 0) !== 0) throw new Error("two unfinished: the cap holds");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { type Pipeline, pipelineCap } from "../model.ts";
import type { FlowControl } from "./flow_control.ts";
import type { Ledger } from "./ledger.ts";
import { UncommittedBudget } from "./uncommitted_budget.ts";

const log = getLogger(["agentstream", "caps"]);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export interface CapsOptions {
  ledger: Ledger;
  flow: FlowControl;
  pipelines: readonly Pipeline[];
  /** The pipelines a topic's messages go to. */
  targets: (topic: string) => readonly Pipeline[];
  maxInFlight: number;
  maxUncommittedBytes: number;
  /** Called when a cap on unfinished messages begins to hold. */
  onPaused?: () => void;
  /** Called when a partition pauses (`held`) for what waits behind its commit point, and when it resumes. */
  onHeld?: (topic: string, partition: number, held: boolean) => void;
}

export class Caps {
  readonly #options: CapsOptions;
  readonly #caps: Map<string, number>;
  readonly #budget: UncommittedBudget;
  readonly #onHold: (() => void)[] = [];
  #closed = false;

  constructor(options: CapsOptions) {
    this.#options = options;
    const { pipelines, maxInFlight, flow } = options;
    this.#caps = new Map(pipelines.map((p) => [p.name, pipelineCap(p, pipelines.length, maxInFlight)]));
    this.#budget = new UncommittedBudget({
      budget: options.maxUncommittedBytes,
      onPause: ({ topic, partition, head, bytes }, share) => {
        options.onHeld?.(topic, partition, true);
        log.warn(
          "{topic}/{partition}: {held} MiB of finished messages wait behind offset {head}, not yet finished (its share of KAFKA_MAX_UNCOMMITTED_BYTES: {share} MiB): pausing this partition until its commit point moves",
          { topic, partition, head, held: mib(bytes), share: mib(share) },
        );
        flow.set({ kind: "held", topic, partition }, true);
      },
      onResume: ({ topic, partition }) => {
        options.onHeld?.(topic, partition, false);
        log.info("{topic}/{partition}: its commit point moved on: resuming", { topic, partition });
        flow.set({ kind: "held", topic, partition }, false);
      },
    });
  }

  /** The cap of a pipeline's unfinished jobs. */
  capOf(pipeline: string): number {
    return this.#caps.get(pipeline)!;
  }

  /** Calls `listener` at each check while any pause reason holds (windows close early then). */
  onHold(listener: () => void): void {
    this.#onHold.push(listener);
  }

  /** No partition may be taken in any more (the bridge stops). */
  close(): void {
    this.#closed = true;
  }

  /**
   * Checks every cap against the ledger now. `committed`: commit points moved (or the assignment
   * changed), so what partitions hold is looked at again whatever the budget's step.
   */
  check(committed = false): void {
    const { ledger, flow, maxInFlight } = this.#options;
    this.#budget.check(ledger.uncommittedBytes, () => ledger.holdings(), committed);
    // The process's cap resumes as soon as it has room: messages parked behind an open circuit
    // count against it, and may never drain to half.
    let paused = flow.cap({ kind: "in-flight" }, ledger.pending, maxInFlight, maxInFlight - 1);
    for (const [pipeline, cap] of this.#caps) {
      paused = flow.cap({ kind: "pipeline", pipeline }, ledger.inFlight(pipeline), cap) || paused;
    }
    if (paused) {
      this.#options.onPaused?.();
      log.debug("in-flight cap reached: pausing {reasons}", { reasons: flow.reasons });
    }
    if (flow.reasons.length) this.#onHold.forEach((listener) => listener());
  }

  /** How many more messages of a partition may be taken in now: 0 while it is paused. */
  room(topic: string, partition: number): number {
    const { ledger, flow, maxInFlight, targets } = this.#options;
    if (this.#closed || flow.paused(topic, partition)) return 0;
    let room = maxInFlight - ledger.pending;
    for (const pipeline of targets(topic)) {
      room = Math.min(room, this.capOf(pipeline.name) - ledger.inFlight(pipeline.name));
    }
    return Math.max(1, room);
  }

  /**
   * When open windows close early: a cap (the pipeline's or the process's) has paused its topics and
   * they hold at least half of it, so that it could never resume (at half) while they wait to fill;
   * or one holds back too many finished messages of its partition from being committed.
   */
  windowing(): {
    crowded: (pipeline: string, held: number) => boolean;
    full: (held: number) => boolean;
    pinned: (topic: string, partition: number) => string | undefined;
  } {
    const { flow, ledger, maxInFlight } = this.#options;
    return {
      crowded: (pipeline, held) => flow.holds({ kind: "pipeline", pipeline }) && 2 * held >= this.capOf(pipeline),
      full: (held) => flow.holds({ kind: "in-flight" }) && 2 * held >= maxInFlight,
      // As many finished messages waiting on one window as the process may have unfinished.
      pinned: (topic, partition) => {
        const { head, finished } = ledger.behind(topic, partition);
        return finished >= maxInFlight ? head : undefined;
      },
    };
  }
}
