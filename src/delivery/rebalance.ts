/**
 * @module
 * The one place partition lifecycle is handled: a {@link RebalanceListener} over the ledger and the
 * commits. When the source hands partitions out again from their committed offsets, what is
 * finished is committed and the rest dropped (every job of the old assignment goes stale: its waits
 * and calls end); offsets carried from a failed commit are kept for owned partitions only; what the
 * ledger remembers finished is kept for owned partitions only. Before the source subscribes again,
 * no new agent call starts and the calls made finish and are committed, so none is made twice.
 * Other parts (open windows, exactly-once claims, metrics) follow through {@link Rebalance.onChange}.
 *
 * @example
 * ```ts
 * import { Rebalance } from "./rebalance.ts";
 * import { Caps } from "./caps.ts";
 * import { CallGate } from "./call_gate.ts";
 * import { Commits } from "./commits.ts";
 * import { FlowControl } from "./flow_control.ts";
 * import { Ledger } from "./ledger.ts";
 * const ledger = new Ledger();
 * const stored: string[] = [];
 * const commits = new Commits({ ledger, write: ({ offsets }) => { stored.push(...offsets.map((o) => o.offset)); return Promise.resolve(); }, fatal: () => {} });
 * const flow = new FlowControl({ topicsOf: () => [], apply: () => {} });
 * const caps = new Caps({ ledger, flow, pipelines: [], targets: () => [], maxInFlight: 10, maxUncommittedBytes: 1e6 });
 * const rebalance = new Rebalance({ ledger, commits, caps, flow, gate: new CallGate(), drainMs: 1_000, stopping: new AbortController().signal });
 * const [first, second] = [ledger.receive("t", 0, ["0"], ["p"]), ledger.receive("t", 0, ["1"], ["p"])];
 * first("0", "p").done();
 * rebalance.partitionsChanged({ kind: "rebalance", cause: "rebalancing", revoked: [{ topic: "t", partition: 0 }] });
 * await commits.now();
 * if (stored.join() !== "1" || !second("1", "p").stale) throw new Error("the finished committed, the rest dropped");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { Caps } from "./caps.ts";
import type { CallGate } from "./call_gate.ts";
import type { Commits } from "./commits.ts";
import type { FlowControl } from "./flow_control.ts";
import type { Ledger } from "./ledger.ts";
import type { PartitionChange, RebalanceListener } from "./ports.ts";

const log = getLogger(["agentstream", "rebalance"]);

export interface RebalanceOptions {
  ledger: Ledger;
  commits: Commits;
  caps: Caps;
  flow: FlowControl;
  /** Closed while the source subscribes again. */
  gate: CallGate;
  /** The longest a resubscription waits for calls in flight; the calls still running then are made again. */
  drainMs: number;
  /** Fires when the bridge stops: a drain waits no longer. */
  stopping: AbortSignal;
}

export class Rebalance implements RebalanceListener {
  readonly #options: RebalanceOptions;
  readonly #listeners: ((change: PartitionChange) => void)[] = [];

  constructor(options: RebalanceOptions) {
    this.#options = options;
  }

  /** Calls `listener` with each change, after the ledger and the commits have taken it in. */
  onChange(listener: (change: PartitionChange) => void): void {
    this.#listeners.push(listener);
  }

  partitionsChanged(change: PartitionChange): void {
    const { ledger, commits, caps, flow, gate } = this.#options;
    const { assigned } = change;
    log.debug("assignment changed ({cause}): committing what is finished, dropping the rest", { ...change });
    // Offsets an earlier failed commit carries are kept for owned partitions only: first, so that
    // the commit below does not carry one another member may have moved past meanwhile. Then, before
    // the source fetches again, what is finished is committed (with exactly-once, on the producers it
    // was done with, fenced where its partition moved) and the rest dropped.
    if (assigned) void commits.owned(assigned);
    void commits.these(ledger.assignmentChanged());
    // What the ledger remembers finished is kept for the partitions still owned only.
    if (assigned) ledger.owned(assigned);
    for (const listener of this.#listeners) listener(change);
    // Subscribed again: calls go on (those that waited at the gate went stale with their generation).
    if (change.kind === "resubscribe") gate.open();
    caps.check(true);
    flow.refresh();
  }

  /**
   * Before the source subscribes again (kafkajs leaves the group, and every message not committed
   * comes again): no new call starts, the calls made finish and their outcomes are committed, so no
   * call is made twice. Messages whose calls had not started (waiting for a slot, or parked behind
   * an open circuit) are delivered again and called then.
   */
  async drain(): Promise<void> {
    const { gate, commits, drainMs, stopping } = this.#options;
    gate.close();
    await gate.idle(AbortSignal.any([stopping, AbortSignal.timeout(drainMs)]));
    await commits.now();
  }
}
