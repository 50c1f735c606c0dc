/** The policies of invoke's chain (src/stages/invoke/), each alone with a fake `next`, then their order. */
import assert from "node:assert/strict";
import { AdaptiveLimit } from "../../src/a2a/adaptive_limit.ts";
import { AgentLimits } from "../../src/a2a/agent_limits.ts";
import { Circuit } from "../../src/circuit.ts";
import { CallGate } from "../../src/delivery/call_gate.ts";
import { failure } from "../../src/errors.ts";
import type { A2AReply } from "../../src/a2a/send_message.ts";
import { adaptiveLimit } from "../../src/stages/invoke/adaptive_limit.ts";
import { callGate } from "../../src/stages/invoke/call_gate.ts";
import { type Circuits, outageGate, stillClear } from "../../src/stages/invoke/outage_gate.ts";
import {
  type Attempt,
  type AttemptJob,
  chain,
  firstAttempt,
  type Outcome,
  type Step,
} from "../../src/stages/invoke/policy.ts";
import { rateLimit } from "../../src/stages/invoke/rate_limit.ts";
import { refusalGate } from "../../src/stages/invoke/refusal_gate.ts";
import { retry, type RetryOptions } from "../../src/stages/invoke/retry.ts";
import { MAX_RESENDS, Outgoing, resends, resentMessageId } from "../../src/stages/invoke/resend.ts";
import { Conversations } from "../../src/a2a/conversations.ts";

const reply = (text = "ok"): Outcome => ({ reply: { text, state: "completed" } as A2AReply });
const transient = (extra: Parameters<typeof failure>[3] = {}): Outcome => ({
  failure: failure("invoke", "transient", "HTTP 503", extra),
});
const refused = (): Outcome => ({ failure: failure("invoke", "refused", "HTTP 401: unknown token") });
const permanent = (): Outcome => ({ failure: failure("invoke", "permanent", "JSON-RPC error -32001") });
const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

function freshJob(): AttemptJob & { stale: boolean } {
  return {
    stale: false,
    get ack() {
      return { stale: this.stale };
    },
  };
}

/** A fake rest-of-chain that answers with `outcomes` in turn (the last one again once they run out). */
function scripted(outcomes: Outcome[] | ((attempt: Attempt, call: number) => Outcome)) {
  const calls: { number: number; roles?: Attempt["roles"] }[] = [];
  const next: Step = (attempt) => {
    calls.push({ number: attempt.number, roles: attempt.roles && { ...attempt.roles } });
    const n = calls.length - 1;
    return Promise.resolve(
      typeof outcomes === "function" ? outcomes(attempt, n) : outcomes[Math.min(n, outcomes.length - 1)],
    );
  };
  return { calls, next };
}

function circuits(agent = new Circuit({ threshold: 1, probeDelayMs: 5, maxProbeDelayMs: 5 })): Circuits {
  return { host: new Circuit({ threshold: Number.POSITIVE_INFINITY, probeDelayMs: 5 }), agent };
}

function dispose({ host, agent }: Circuits) {
  host.dispose();
  agent.dispose();
}

function retryOptions(overrides: Partial<RetryOptions> = {}) {
  const waits: number[] = [];
  const options: RetryOptions = {
    retries: { max: 2, backoffMs: 100, maxBackoffMs: 1_000 },
    circuits: circuits(),
    sleep: (ms) => (waits.push(ms), Promise.resolve()),
    random: () => 0,
    ...overrides,
  };
  return { options, waits };
}

// --- retry

Deno.test("retry: a transient failure is retried with doubling backoff until the retries are spent, then exhausted", async () => {
  const { options, waits } = retryOptions({ random: () => 0.5 });
  try {
    const { calls, next } = scripted([transient()]);
    const attempt = firstAttempt(freshJob());
    const outcome = await retry(options)(attempt, next);
    assert.ok("failure" in outcome);
    assert.equal(outcome.failure.class, "exhausted");
    assert.equal(outcome.failure.message, "HTTP 503 (after 3 attempts)");
    assert.equal(outcome.failure.attempts, 3);
    assert.deepEqual(calls.map((c) => c.number), [1, 2, 3]);
    assert.equal(attempt.number, 3);
    assert.deepEqual(waits, [75, 150], "half of each wait jittered: 50 + 25, 100 + 50");
  } finally {
    dispose(options.circuits);
  }
});

Deno.test("retry: Retry-After outweighs the backoff, but never beyond max_backoff", async () => {
  const { options, waits } = retryOptions();
  try {
    const { next } = scripted([transient({ retryAfterMs: 400 }), transient({ retryAfterMs: 3_600_000 }), reply()]);
    const attempt = firstAttempt(freshJob());
    const outcome = await retry(options)(attempt, next);
    assert.ok("reply" in outcome);
    assert.equal(attempt.number, 3);
    assert.deepEqual(waits, [400, 1_000]);
  } finally {
    dispose(options.circuits);
  }
});

Deno.test("retry: `again` goes through the chain once more at once, spending no attempt; other outcomes end it", async () => {
  const { options, waits } = retryOptions();
  try {
    for (const last of [reply(), permanent(), refused(), { skipped: "late" }, { abandoned: "stop" }] as Outcome[]) {
      const { calls, next } = scripted([{ again: "resend" }, { again: "held back" }, last]);
      const attempt = firstAttempt(freshJob());
      assert.deepEqual(await retry(options)(attempt, next), last);
      assert.deepEqual(calls.map((c) => c.number), [1, 1, 1]);
    }
    assert.deepEqual(waits, [], "no backoff");
  } finally {
    dispose(options.circuits);
  }
});

Deno.test("retry: the job's call pass is released before each pass and while it backs off", async () => {
  const released: number[] = [];
  const job = freshJob();
  const { options } = retryOptions({
    sleep: () => {
      assert.equal(job.callPass, undefined, "no pass held while backing off");
      return Promise.resolve();
    },
  });
  try {
    const { next } = scripted((attempt, n) => {
      assert.equal(attempt.job.callPass, undefined, "each pass begins without one");
      assert.equal(attempt.callStarted, 0, "and without the last pass's call start");
      attempt.job.callPass = () => released.push(n);
      attempt.callStarted = 1;
      return n === 0 ? transient() : n === 1 ? { again: "resend" } : reply();
    });
    await retry(options)(firstAttempt(job), next);
    assert.deepEqual(released, [0, 1]);
    assert.ok(job.callPass, "the last call's pass is held until its outcome is settled");
  } finally {
    dispose(options.circuits);
  }
});

Deno.test("retry: a message that spends its retries while nobody got an answer asks the agent's card: up, it ends exhausted", async () => {
  let asked = 0;
  const { options } = retryOptions({ isUp: () => (asked++, Promise.resolve(true)) });
  try {
    const { next } = scripted([transient()]);
    const outcome = await retry(options)(firstAttempt(freshJob()), next);
    assert.ok("failure" in outcome);
    assert.equal(outcome.failure.class, "exhausted");
    assert.match(outcome.failure.message, /after 3 attempts; the agent is up/);
    assert.equal(asked, 1);
    assert.equal(options.circuits.agent.open, false, "a card that answers opens no circuit");
  } finally {
    dispose(options.circuits);
  }
});

Deno.test("retry: down, the card check trips the agent's circuit and the message waits for it, spending nothing more", async () => {
  let asked = 0;
  const { options, waits } = retryOptions({ isUp: () => (asked++, Promise.resolve(false)) });
  try {
    const { calls, next } = scripted((_, n) => (n < 3 ? transient() : reply()));
    const attempt = firstAttempt(freshJob());
    const outcome = await retry(options)(attempt, next);
    assert.ok("reply" in outcome);
    assert.equal(asked, 1);
    assert.equal(options.circuits.agent.state, "down", "tripped (nothing here closes it)");
    assert.deepEqual(calls.map((c) => c.number), [1, 2, 3, 3], "after the trip: no attempt spent, no backoff");
    assert.deepEqual(waits.length, 2);
  } finally {
    dispose(options.circuits);
  }
});

Deno.test("retry: no card check when someone got an answer meanwhile, nor without an agent circuit", async () => {
  let asked = 0;
  const isUp = () => (asked++, Promise.resolve(true));
  for (
    const { answered, withCircuit } of [{ answered: true, withCircuit: true }, { answered: false, withCircuit: false }]
  ) {
    const { options } = retryOptions(withCircuit ? { isUp } : {});
    try {
      const { next } = scripted((_, n) => {
        if (answered && n === 1) options.circuits.agent.succeeded(); // another message's call
        return transient();
      });
      const outcome = await retry(options)(firstAttempt(freshJob()), next);
      assert.ok("failure" in outcome);
      assert.equal(outcome.failure.message, "HTTP 503 (after 3 attempts)");
    } finally {
      dispose(options.circuits);
    }
  }
  assert.equal(asked, 0);
});

Deno.test("retry: while a circuit is open a failed probe spends an attempt, a failed call held in flight does not", async () => {
  const { options, waits } = retryOptions({ retries: { max: 5, backoffMs: 100, maxBackoffMs: 1_000 } });
  try {
    options.circuits.agent.trip();
    const { calls, next } = scripted((attempt, n) => {
      attempt.roles = { host: "call", agent: n === 1 ? "call" : "probe" };
      return n < 3 ? transient() : reply();
    });
    await retry(options)(firstAttempt(freshJob()), next);
    assert.deepEqual(calls.map((c) => c.number), [1, 2, 2, 3]);
    assert.deepEqual(waits, [], "callers of an open circuit wait there, not in a backoff");
  } finally {
    dispose(options.circuits);
  }
});

// --- resends

Deno.test("resends: a seen id goes again under derived ids, spending no retry, until MAX_RESENDS", async () => {
  const outgoing = new Outgoing({ messageId: "m-1", text: "hi", metadata: {} });
  const seen: Outcome = { failure: failure("invoke", "seen", "already exists") };
  const policy = resends(outgoing);
  const attempt = firstAttempt(freshJob());
  for (let n = 1; n <= MAX_RESENDS; n++) {
    assert.ok("again" in await policy(attempt, () => Promise.resolve(seen)));
    assert.equal(outgoing.message.messageId, resentMessageId("m-1", n));
    assert.equal(outgoing.resent, n);
  }
  const last = await policy(attempt, () => Promise.resolve(seen));
  assert.ok("failure" in last);
  assert.equal(last.failure.class, "permanent");
  assert.match(last.failure.message, /and for each of 10 new ids/);
});

Deno.test("resends: a lost conversation is dropped and the key starts a new one; without one it is the job's failure", async () => {
  const conversations = new Conversations();
  const talk = { pipeline: "p", key: "k", url: "http://agent" };
  assert.notEqual(conversations.contextFor(talk), undefined, "a derived conversation id");
  const outgoing = new Outgoing({ messageId: "m", contextId: "ctx-1", text: "hi", metadata: {} });
  const lost: Outcome = { failure: failure("invoke", "context-lost", "unknown context") };
  const policy = resends(outgoing, { talk, conversations, url: talk.url });
  assert.ok("again" in await policy(firstAttempt(freshJob()), () => Promise.resolve(lost)));
  assert.equal(outgoing.message.contextId, undefined);
  assert.equal(outgoing.original.contextId, undefined);
  assert.equal(conversations.contextFor(talk), undefined);
  assert.deepEqual(
    await policy(firstAttempt(freshJob()), () => Promise.resolve(lost)),
    lost,
    "no context sent: a failure",
  );
});

// --- refusal gate

Deno.test("refusal gate: a refusal opens the agent's circuit as refused and goes again; other outcomes pass untouched", async () => {
  const agent = new Circuit({ threshold: 1 });
  try {
    const attempt = { ...firstAttempt(freshJob()), roles: { host: "call", agent: "call" } as const };
    for (const outcome of [reply(), transient(), permanent()]) {
      assert.deepEqual(await refusalGate(agent)(attempt, () => Promise.resolve(outcome)), outcome);
    }
    assert.equal(agent.open, false);
    const outcome = await refusalGate(agent)(attempt, () => Promise.resolve(refused()));
    assert.ok("again" in outcome);
    assert.equal(agent.state, "refused");
  } finally {
    agent.dispose();
  }
});

Deno.test("refusal gate: without an agent circuit a refusal is the job's failure", async () => {
  const outcome = await refusalGate(undefined)(firstAttempt(freshJob()), () => Promise.resolve(refused()));
  assert.ok("failure" in outcome);
  assert.equal(outcome.failure.class, "refused");
});

// --- outage gate

Deno.test("outage gate: a first call's failure is no evidence; a retry's, a probe's and an unreachable agent's are", async () => {
  for (
    const { number, unreachable, opens } of [
      { number: 1, unreachable: false, opens: false },
      { number: 2, unreachable: false, opens: true },
      { number: 1, unreachable: true, opens: true },
    ]
  ) {
    const c = circuits();
    const host = new Circuit({ threshold: 1 });
    try {
      const attempt = { ...firstAttempt(freshJob()), number };
      await outageGate({ host, agent: c.agent })(attempt, () => Promise.resolve(transient({ unreachable })));
      assert.equal(c.agent.open, opens, `attempt ${number}, unreachable ${unreachable}`);
      assert.equal(host.open, unreachable, "only an unreachable agent counts against its host");
      assert.deepEqual(attempt.roles, { host: "call", agent: "call" });
    } finally {
      dispose(c);
      host.dispose();
    }
  }
});

Deno.test("outage gate: a refusal says only that the host answered; an answer closes both circuits", async () => {
  const c = circuits();
  let hostAnswers = 0;
  const host = Object.assign(c.host, { succeeded: () => hostAnswers++ });
  try {
    c.agent.trip();
    const attempt = firstAttempt(freshJob());
    await outageGate({ host, agent: c.agent })(attempt, () => Promise.resolve(refused()));
    assert.equal(hostAnswers, 1);
    assert.equal(c.agent.state, "down", "the agent's circuit is the refusal gate's");
    assert.equal(attempt.roles?.agent, "probe");
    c.agent.refused("probe"); // as the refusal gate does
    const answered = await outageGate(c)(firstAttempt(freshJob()), () => Promise.resolve(reply()));
    assert.ok("reply" in answered);
    assert.equal(c.agent.open, false, "a probe that gets an answer closes the circuit");
    assert.equal(hostAnswers, 2);
  } finally {
    dispose(c);
  }
});

Deno.test("outage gate: a stop before the call makes none, even for a caller past an open circuit", async () => {
  const c = circuits();
  try {
    c.agent.trip();
    const { calls, next } = scripted([reply()]);
    const attempt = firstAttempt(freshJob(), { waits: AbortSignal.abort() });
    assert.deepEqual(await outageGate(c)(attempt, next), { abandoned: "stopped, or stale, before the call" });
    assert.equal(calls.length, 0);
  } finally {
    dispose(c);
  }
});

Deno.test("outage gate: a probe not made (abandoned, held back, thrown) is handed on to the next caller", async () => {
  for (const notMade of [{ abandoned: "stale" }, { again: "held back" }, "throw"] as const) {
    const c = circuits();
    try {
      c.agent.failed("call");
      const gate = outageGate(c);
      const roles: string[] = [];
      const first = gate(firstAttempt(freshJob()), (attempt) => {
        roles.push(`first:${attempt.roles!.agent}`);
        return notMade === "throw" ? Promise.reject(new Error("bug")) : Promise.resolve(notMade);
      });
      const second = gate(firstAttempt(freshJob()), (attempt) => {
        roles.push(`second:${attempt.roles!.agent}`);
        return Promise.resolve(reply());
      });
      if (notMade === "throw") await assert.rejects(first, /bug/);
      else assert.deepEqual(await first, notMade);
      assert.ok("reply" in await second);
      assert.deepEqual(roles, ["first:probe", "second:probe"], String(notMade));
      assert.equal(c.agent.open, false);
    } finally {
      dispose(c);
    }
  }
});

Deno.test("outage gate: stopped while waiting below, or a call cut short, abandons the job and reports nothing", async () => {
  const c = circuits(new Circuit({ threshold: 1 }));
  try {
    const stop = new AbortController();
    const attempt = firstAttempt(freshJob(), { waits: stop.signal, signal: stop.signal });
    const thrown = await outageGate(c)(attempt, () => {
      stop.abort();
      return Promise.reject(new Error("aborted while queued"));
    });
    assert.ok("abandoned" in thrown);
    const cut = new AbortController();
    const cutShort = await outageGate(c)({ ...firstAttempt(freshJob(), { signal: cut.signal }), number: 2 }, () => {
      cut.abort();
      return Promise.resolve(transient({ unreachable: true }));
    });
    assert.deepEqual(cutShort, { abandoned: "call cut short" });
    assert.equal(c.agent.open, false, "a call cut short is no evidence");
    assert.equal(c.host.successes + c.agent.successes, 0);
  } finally {
    dispose(c);
  }
});

Deno.test("outage gate: the job gone stale before the call makes no call", async () => {
  const c = circuits();
  const job = freshJob();
  job.stale = true;
  const { calls, next } = scripted([reply()]);
  assert.ok("abandoned" in await outageGate(c)(firstAttempt(job), next));
  assert.equal(calls.length, 0);
  dispose(c);
});

Deno.test("still clear: a circuit that opened while the call waited for its slot holds the call back; its probe goes on", async () => {
  const c = circuits();
  try {
    const { calls, next } = scripted([reply()]);
    const attempt = { ...firstAttempt(freshJob()), roles: { host: "call", agent: "call" } as const };
    assert.ok("reply" in await stillClear(c)(attempt, next));
    c.agent.trip();
    assert.ok("again" in await stillClear(c)(attempt, next));
    assert.ok("reply" in await stillClear(c)({ ...attempt, roles: { host: "call", agent: "probe" } }, next));
    const job = freshJob();
    job.stale = true;
    assert.ok("abandoned" in await stillClear(c)({ ...attempt, job }, next));
    assert.equal(calls.length, 2);
  } finally {
    dispose(c);
  }
});

// --- adaptive limit

Deno.test("adaptive limit: a call holds a slot; an overload cuts the limit, a long-running route's or an abandoned call's does not", async () => {
  const overloaded = transient({ overload: true });
  for (
    const { route, outcome, cut } of [
      { route: { longRunning: false }, outcome: overloaded, cut: true },
      { route: { longRunning: true }, outcome: overloaded, cut: false },
      { route: { longRunning: false }, outcome: { abandoned: "stale" } as Outcome, cut: false },
      { route: { longRunning: false }, outcome: transient(), cut: false },
    ]
  ) {
    const limit = new AdaptiveLimit({ initial: 4, max: 8 });
    const held: number[] = [];
    await Promise.all([1, 2, 3].map(() =>
      adaptiveLimit(limit, route)(firstAttempt(freshJob()), async (attempt) => {
        attempt.callStarted = performance.now();
        await tick();
        held.push(limit.inFlight);
        return outcome;
      })
    ));
    assert.equal(held[0], 3, "each call holds a slot");
    assert.equal(limit.inFlight, 0, "and gives it back");
    assert.equal(limit.limit < 4, cut, JSON.stringify({ route, outcome }));
  }
});

Deno.test("adaptive limit: a retry takes the next free slot before first calls waiting; a slot is given back when the call throws", async () => {
  const limit = new AdaptiveLimit({ initial: 1, max: 1 });
  const order: string[] = [];
  const policy = adaptiveLimit(limit, { longRunning: false });
  const call = (name: string) => async () => {
    order.push(name);
    await tick();
    if (name === "busy") throw new Error("bug");
    return reply();
  };
  const busy = policy(firstAttempt(freshJob()), call("busy"));
  const first = policy(firstAttempt(freshJob()), call("first"));
  const again = policy({ ...firstAttempt(freshJob()), number: 2 }, call("retry"));
  await assert.rejects(busy, /bug/);
  await Promise.all([first, again]);
  assert.deepEqual(order, ["busy", "retry", "first"]);
  assert.equal(limit.inFlight, 0);
});

Deno.test("adaptive limit: a wait for a slot ends at a stop, without the call", async () => {
  const limit = new AdaptiveLimit({ initial: 1, max: 1 });
  const policy = adaptiveLimit(limit, { longRunning: false });
  let release = () => {};
  const busy = policy(firstAttempt(freshJob()), () => new Promise((resolve) => release = () => resolve(reply())));
  const stop = new AbortController();
  const { calls, next } = scripted([reply()]);
  const waiting = policy(firstAttempt(freshJob(), { waits: stop.signal }), next);
  stop.abort();
  await assert.rejects(waiting);
  release();
  await busy;
  assert.equal(calls.length, 0);
  assert.equal(limit.inFlight, 0);
});

// --- rate limit (agent_limits)

Deno.test("rate limit: calls wait for the agent's limits; a stop ends a wait, not a call under way", async () => {
  const url = "http://agents.local/v1/a2a/p";
  const limits = new AgentLimits();
  limits.set(url, { concurrency: 1 });
  const policy = rateLimit(limits, url);
  const stop = new AbortController();
  let finish = () => {};
  const running = policy(firstAttempt(freshJob(), { waits: stop.signal }), (attempt) => {
    attempt.callStarted = performance.now();
    return new Promise((resolve) => finish = () => resolve(reply()));
  });
  await tick();
  const { calls, next } = scripted([reply()]);
  const queued = policy(firstAttempt(freshJob(), { waits: stop.signal }), next);
  stop.abort();
  await assert.rejects(queued);
  finish();
  assert.ok("reply" in await running, "the call under way went on");
  assert.equal(calls.length, 0);
  assert.ok("reply" in await rateLimit(undefined, url)(firstAttempt(freshJob()), next), "no limits: at once");
});

// --- call gate

Deno.test("call gate: closed, no call starts; a call takes a pass, a long-running one none; a stop meanwhile makes none", async () => {
  const gate = new CallGate();
  gate.close();
  const job = freshJob();
  const { calls, next } = scripted([reply()]);
  const waiting = callGate(gate, { longRunning: false })(firstAttempt(job), next);
  const longRunning = freshJob();
  await callGate(gate, { longRunning: true })(firstAttempt(longRunning), next);
  assert.equal(calls.length, 1, "a long-running call passes a closed gate");
  assert.equal(longRunning.callPass, undefined);
  await tick();
  assert.equal(calls.length, 1);
  gate.open();
  await waiting;
  assert.equal(calls.length, 2);
  assert.equal(gate.held, 1);
  job.callPass!();
  assert.equal(gate.held, 0);
  const stopped = firstAttempt(freshJob(), { waits: AbortSignal.abort() });
  await assert.rejects(callGate(undefined, { longRunning: false })(stopped, next), /stopping/);
  assert.equal(calls.length, 2);
});

// --- the chain

Deno.test("the chain: a refused agent's calls wait at its circuit, never take an adaptive slot, and spend no retry", async () => {
  const agent = new Circuit({ threshold: 5, probeDelayMs: 30, maxProbeDelayMs: 30 });
  const c = { host: new Circuit({ threshold: Number.POSITIVE_INFINITY }), agent };
  const limit = new AdaptiveLimit({ initial: 4, max: 4 });
  const { options } = retryOptions({ circuits: c });
  const log: string[] = [];
  let accepted = false;
  const call: Step = (attempt) => {
    log.push(`call ${attempt.roles!.agent} slots=${limit.inFlight}`);
    return Promise.resolve(accepted ? reply() : refused());
  };
  const run = chain([
    retry(options),
    refusalGate(agent),
    outageGate(c),
    adaptiveLimit(limit, { longRunning: false }),
    stillClear(c),
    callGate(undefined, { longRunning: false }),
  ], call);
  try {
    const first = firstAttempt(freshJob());
    const a = run(first);
    await tick();
    assert.equal(agent.state, "refused");
    const second = firstAttempt(freshJob());
    const b = run(second);
    await tick(10);
    assert.equal(limit.inFlight, 0, "nobody waiting at a refused circuit holds a slot");
    assert.deepEqual(log, ["call call slots=1"]);
    accepted = true;
    const [ra, rb] = await Promise.all([a, b]);
    assert.ok("reply" in ra && "reply" in rb);
    assert.equal(log[1], "call probe slots=1", "one probe goes out");
    assert.equal(log.length, 3);
    assert.equal(first.number, 1, "no retry spent");
    assert.equal(second.number, 1);
    assert.equal(agent.open, false);
  } finally {
    dispose(c);
  }
});

Deno.test("the chain: a call whose circuit opened while it waited for a slot gives the slot back and waits at the circuit", async () => {
  const agent = new Circuit({ threshold: 1, probeDelayMs: 20, maxProbeDelayMs: 20 });
  const c = { host: new Circuit({ threshold: Number.POSITIVE_INFINITY }), agent };
  const limit = new AdaptiveLimit({ initial: 1, max: 1 });
  const { options } = retryOptions({ circuits: c });
  const calls: string[] = [];
  let release = () => {};
  const call: Step = (attempt) => {
    calls.push(attempt.roles!.agent);
    if (calls.length === 1) {
      // The first call holds the only slot until the agent's circuit has opened.
      return new Promise((resolve) => release = () => resolve(transient()));
    }
    return Promise.resolve(reply());
  };
  const run = chain([retry(options), outageGate(c), adaptiveLimit(limit, { longRunning: false }), stillClear(c)], call);
  try {
    const a = run(firstAttempt(freshJob()));
    await tick();
    const b = run(firstAttempt(freshJob()));
    await tick();
    agent.trip(); // another message found the agent down
    release(); // b gets the slot after the circuit opened
    const [ra, rb] = await Promise.all([a, b]);
    assert.ok("reply" in ra && "reply" in rb);
    assert.deepEqual(calls, ["call", "probe", "call"], "b was held back, not sent into the open circuit");
  } finally {
    dispose(c);
  }
});
