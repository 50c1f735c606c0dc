/**
 * @module
 * The outage gate: a call passes its host's circuit, then its agent's (see {@link Circuit} and
 * src/a2a/agent_circuits.ts), and tells both what came of it. While a circuit is open its callers
 * wait there and only its probe goes out. A message that failed before is the better probe of its
 * agent; the host's is best made by one whose own agent's circuit is closed.
 *
 * - An answer (a reply, or an error the agent made on purpose) says the agent and its host are up.
 * - A transient failure counts against the agent's circuit only as evidence of an outage: a first
 *   call's own failure (a rate limit passed on as `-32603`, an HTTP 429) is none; the same message
 *   failing again, a probe failing, or an agent that cannot be reached, is. Only an unreachable
 *   agent counts against its host: whatever the agent answered, its host answered.
 * - A refusal is the refusal gate's (see refusal_gate.ts); its host answered.
 * - A call that is not made after all (a stop, a stale job, a call held back, a call cut short, or
 *   one that threw) hands its probe on: a probe never made would keep a circuit shut.
 *
 * {@link stillClear} is this gate's second look, once the call got its concurrency slot: a circuit
 * that opened meanwhile holds the call back with the others, so a burst of first calls queued for
 * slots cannot keep the probe (ideally a retry) from being made.
 *
 * @example
 * ```ts
 * import { Circuit } from "../../circuit.ts";
 * import { failure } from "../../errors.ts";
 * import { firstAttempt } from "./policy.ts";
 * import { outageGate } from "./outage_gate.ts";
 * const circuits = { host: new Circuit({ threshold: 9 }), agent: new Circuit({ threshold: 1 }) };
 * const gate = outageGate(circuits);
 * const attempt = firstAttempt({ ack: { stale: false } });
 * const rateLimited = { failure: failure("invoke", "transient", "HTTP 429") };
 * await gate(attempt, () => Promise.resolve(rateLimited));
 * if (circuits.agent.open) throw new Error("a first call's own failure is no evidence of an outage");
 * attempt.number = 2;
 * await gate(attempt, () => Promise.resolve(rateLimited));
 * if (!circuits.agent.open) throw new Error("the same message failing again is");
 * if (circuits.host.open) throw new Error("the host answered");
 * circuits.agent.dispose();
 * ```
 */
import type { Circuit } from "../../circuit.ts";
import { type Attempt, isRetry, type Outcome, type Policy, stopped } from "./policy.ts";

/** The circuits a job's calls pass: its host's, then its agent's. */
export interface Circuits {
  readonly host: Circuit;
  readonly agent: Circuit;
}

/** Whether either circuit chose this pass as its probe. */
export function probing(attempt: Attempt): boolean {
  return attempt.roles?.host === "probe" || attempt.roles?.agent === "probe";
}

/** The outage gate over `circuits`. */
export function outageGate({ host, agent }: Circuits): Policy {
  return async (attempt, next) => {
    const retry = isRetry(attempt);
    const hostRole = await host.acquire(attempt.waits, { retry, ready: () => !agent.open });
    const role = await agent.acquire(attempt.waits, { retry });
    attempt.roles = { host: hostRole, agent: role };
    const skip = () => {
      host.skipped(hostRole);
      agent.skipped(role);
    };
    // Shutting down, or the assignment changed (Kafka delivers the message again): no more calls.
    if (stopped(attempt) || attempt.job.ack.stale) {
      skip();
      return { abandoned: "stopped, or stale, before the call" };
    }
    let outcome: Outcome;
    try {
      outcome = await next(attempt);
    } catch (error) {
      skip();
      if (!stopped(attempt)) throw error;
      // Stopped while waiting for a slot, the agent's limits or the gate: the next run handles the message.
      return { abandoned: "stopped while waiting to call" };
    }
    if ("abandoned" in outcome || "again" in outcome) {
      skip();
      return outcome;
    }
    // Cut short (the end of the grace period, or the job went stale): whoever handles the message
    // next makes the call. A probe cut short is no answer.
    if ("failure" in outcome && attempt.signal?.aborted) {
      skip();
      return { abandoned: "call cut short" };
    }
    const problem = "failure" in outcome ? outcome.failure : undefined;
    if (problem?.class === "refused") {
      // The agent refuses the caller: its own circuit is the refusal gate's. Its host answered.
      host.succeeded();
    } else if (problem?.class === "transient") {
      const unreachable = problem.unreachable === true;
      agent.failed(role, { evidence: unreachable || retry || probing(attempt), unreachable });
      if (unreachable) host.failed(hostRole);
      else host.succeeded();
    } else {
      // The agent answered (a reply, or an error it made on purpose): it and its host are up.
      host.succeeded();
      agent.succeeded();
    }
    return outcome;
  };
}

/**
 * The outage gate's second look, once the call got its concurrency slot: the assignment may have
 * changed, or a stop begun, while the call waited for it; and a circuit that opened meanwhile
 * holds this call back with the others (`again`, spending no retry). A probe goes on.
 */
export function stillClear({ host, agent }: Circuits): Policy {
  return (attempt, next) => {
    if (attempt.job.ack.stale || stopped(attempt)) {
      return Promise.resolve({ abandoned: "stopped, or stale, while waiting for a slot" });
    }
    const roles = attempt.roles;
    if ((roles?.host === "call" && host.open) || (roles?.agent === "call" && agent.open)) {
      return Promise.resolve({ again: "a circuit opened while the call waited for a slot" });
    }
    return next(attempt);
  };
}
