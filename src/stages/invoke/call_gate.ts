/**
 * @module
 * The call gate (see {@link CallGate}), last before the call: while the consumer subscribes again
 * no call starts, and a call made holds a pass (`job.callPass`) until its outcome is settled (the
 * retry policy releases it while the job waits for anything else). A long-running task is resumed
 * from the task registry when its message comes again: its call need not be waited for, and takes
 * no pass. A stop that began while the call waited (for the agent's limits or the gate) means it
 * is not made.
 *
 * @example
 * ```ts
 * import { CallGate } from "../../delivery/call_gate.ts";
 * import { firstAttempt } from "./policy.ts";
 * import { callGate } from "./call_gate.ts";
 * const gate = new CallGate();
 * const job: { ack: { stale: boolean }; callPass?: () => void } = { ack: { stale: false } };
 * gate.close();
 * let called = false;
 * const calling = callGate(gate, { longRunning: false })(firstAttempt(job), () => {
 *   called = true;
 *   return Promise.resolve({ skipped: "done" });
 * });
 * await new Promise((resolve) => setTimeout(resolve, 5));
 * if (called) throw new Error("no call starts while the gate is closed");
 * gate.open();
 * await calling;
 * if (!called || gate.held !== 1 || !job.callPass) throw new Error("the call holds a pass");
 * job.callPass();
 * ```
 */
import type { CallGate } from "../../delivery/call_gate.ts";
import { type Policy, stopped } from "./policy.ts";

/** The gate's policy; no gate: only the check for a stop. */
export function callGate(gate: CallGate | undefined, route: { longRunning: boolean }): Policy {
  return async (attempt, next) => {
    if (gate && !route.longRunning) attempt.job.callPass ??= await gate.enter(attempt.waits);
    if (stopped(attempt)) throw new Error("stopping");
    return next(attempt);
  };
}
