/**
 * @module
 * The refusal gate: an agent that refuses the caller (a token it does not accept, an agent id it
 * does not know) refuses every message the same way until a person acts, so none is failed for it.
 * Its circuit opens in the `refused` state and the message goes through the chain again, spending
 * no retry: it waits at the outage gate, with every other call to the agent, until a probe is
 * accepted (see {@link Circuit.refused}). A refused probe doubles the pause before the next.
 *
 * It needs the outage gate below it: that gate holds the callers of the open circuit, and says
 * whether this call was its probe. Without an agent circuit (none configured) a refusal fails the
 * job as `refused`.
 *
 * @example
 * ```ts
 * import { Circuit } from "../../circuit.ts";
 * import { failure } from "../../errors.ts";
 * import { firstAttempt } from "./policy.ts";
 * import { refusalGate } from "./refusal_gate.ts";
 * const agent = new Circuit();
 * const attempt = { ...firstAttempt({ ack: { stale: false } }), roles: { host: "call", agent: "call" } as const };
 * const refused = { failure: failure("invoke", "refused", "HTTP 401") };
 * const outcome = await refusalGate(agent)(attempt, () => Promise.resolve(refused));
 * if (!("again" in outcome) || agent.state !== "refused") throw new Error("the message waits, no retry spent");
 * const failed = await refusalGate(undefined)(attempt, () => Promise.resolve(refused));
 * if (!("failure" in failed)) throw new Error("without a circuit a refusal is the job's failure");
 * agent.dispose();
 * ```
 */
import type { Circuit } from "../../circuit.ts";
import { failureOf, type Policy } from "./policy.ts";

/** The refusal gate of `agent`'s circuit; none: a refusal is the job's failure. */
export function refusalGate(agent: Circuit | undefined): Policy {
  return async (attempt, next) => {
    const outcome = await next(attempt);
    const refused = failureOf(outcome, "refused");
    if (!agent || !refused) return outcome;
    agent.refused(attempt.roles?.agent, refused.failure.message);
    return { again: "the agent refuses the caller" };
  };
}
