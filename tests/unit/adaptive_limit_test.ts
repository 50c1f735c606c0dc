/**
 * The adaptive limit against simulated agents on a simulated clock: a backlog of calls, each started
 * as soon as the limit allows, answered as the agent model says.
 */
import assert from "node:assert/strict";
import { AdaptiveLimit } from "../../src/a2a/adaptive_limit.ts";
import { sendMessage } from "../../src/a2a/send_message.ts";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { AGENT_FLAVOURS } from "../support/flavours.ts";

/**
 * How an agent answers a call started while it serves `serving` calls (this one included; refused
 * calls are not served), at `now`, with `jitter` in [0.8, 1.2) to scale its latency by.
 */
type Agent = (serving: number, now: number, jitter: number) => { latencyMs: number; overload: boolean };

/** A seeded pseudo-random source (mulberry32): runs are repeatable. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Run {
  limit: AdaptiveLimit;
  calls: number;
  overloads: number;
  /** Latencies of the answered calls in the last half of the run. */
  lateLatencies: number[];
  /** Answered calls per second over the last half of the run. */
  lateRate: number;
}

/** Keeps the limit full for `seconds` of simulated time, with at most `backlog` calls ready at once. */
function simulate(agent: Agent, seconds: number, options: { max?: number; backlog?: number } = {}): Run {
  let now = 0;
  const limit = new AdaptiveLimit({ max: options.max ?? 256, now: () => now });
  const running: { end: number; latencyMs: number; overload: boolean }[] = [];
  const backlog = options.backlog ?? Number.POSITIVE_INFINITY;
  const run: Run = { limit, calls: 0, overloads: 0, lateLatencies: [], lateRate: 0 };
  const random = seeded(7);
  let lateAnswers = 0;
  let serving = 0;
  const endMs = seconds * 1000;
  while (now < endMs) {
    while (limit.inFlight < limit.limit && running.length < backlog) {
      void limit.acquire(); // room: it starts at once
      const answer = agent(serving + 1, now, 0.8 + 0.4 * random());
      if (!answer.overload) serving++;
      running.push({ end: now + answer.latencyMs, ...answer });
      run.calls++;
    }
    running.sort((a, b) => a.end - b.end);
    const call = running.shift()!;
    now = call.end;
    limit.release({ latencyMs: call.latencyMs, overload: call.overload });
    if (!call.overload) serving--;
    if (call.overload) run.overloads++;
    else if (now > endMs / 2) {
      lateAnswers++;
      run.lateLatencies.push(call.latencyMs);
    }
  }
  run.lateRate = lateAnswers / (seconds / 2);
  return run;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

Deno.test("an agent with ample capacity: the limit grows to its maximum", () => {
  const run = simulate((_, __, jitter) => ({ latencyMs: 100 * jitter, overload: false }), 20);
  assert.equal(run.limit.limit, 256);
  assert.ok(run.lateRate > 0.95 * 2560, `rate ${run.lateRate}`);
});

Deno.test("an agent that refuses calls beyond 40 at once: the limit hugs 40, with few refusals", () => {
  const run = simulate(
    (serving, _, jitter) =>
      serving > 40 ? { latencyMs: 2 * jitter, overload: true } : { latencyMs: 100 * jitter, overload: false },
    120,
  );
  assert.ok(run.lateRate >= 0.85 * 400, `rate ${run.lateRate} (K ÷ latency: 400)`);
  assert.ok(run.overloads / run.calls <= 0.02, `${run.overloads} of ${run.calls} calls refused`);
  assert.ok(run.limit.limit >= 30 && run.limit.limit <= 42, `limit ${run.limit.limit}`);
});

Deno.test("an agent that queues beyond 20 calls: latency stays within 2× its own, throughput near its capacity", () => {
  // 20 workers of 100 ms each: beyond 20 calls at once, each waits its turn.
  const run = simulate(
    (serving, _, jitter) => ({ latencyMs: 100 * jitter * Math.max(1, serving / 20), overload: false }),
    120,
  );
  const p99 = percentile(run.lateLatencies, 99);
  assert.ok(p99 <= 200, `p99 ${p99} ms (unloaded: 100 ms)`);
  assert.ok(run.lateRate >= 0.85 * 200, `rate ${run.lateRate} (capacity: 200/s)`);
});

Deno.test("an agent that became slower for good: the floor is measured again and the limit recovers", () => {
  // 100 ms for a minute, then 300 ms with ample capacity: the limit must not stay held down.
  const run = simulate((_, now, jitter) => ({ latencyMs: (now < 60_000 ? 100 : 300) * jitter, overload: false }), 240);
  assert.ok((run.limit.floorMs ?? 0) >= 240, `floor ${run.limit.floorMs}`);
  assert.equal(run.limit.limit, 256);
});

Deno.test("calls that never fill half the limit do not make it grow", () => {
  const run = simulate((_, __, jitter) => ({ latencyMs: 100 * jitter, overload: false }), 20, { backlog: 1 });
  assert.ok(run.limit.limit <= 4, `limit ${run.limit.limit}`);
});

Deno.test("calls over the limit wait in order, and one whose signal aborts leaves the line", async () => {
  const limit = new AdaptiveLimit({ initial: 1, max: 1 });
  await limit.acquire();
  const order: string[] = [];
  const controller = new AbortController();
  const second = limit.acquire().then(() => order.push("second"));
  const aborted = limit.acquire(controller.signal).then(() => order.push("aborted"), () => order.push("left"));
  const third = limit.acquire().then(() => order.push("third"));
  controller.abort();
  await aborted;
  limit.release();
  await second;
  limit.release();
  await third;
  assert.deepEqual(order, ["left", "second", "third"]);
  assert.equal(limit.inFlight, 1);
});

Deno.test("a retry waiting for a slot goes before every first call, after the retries before it", async () => {
  const limit = new AdaptiveLimit({ initial: 1, max: 1 });
  await limit.acquire();
  const order: string[] = [];
  const controller = new AbortController();
  const waiting = [
    limit.acquire().then(() => order.push("first 1")),
    limit.acquire().then(() => order.push("first 2")),
    limit.acquire(undefined, { retry: true }).then(() => order.push("retry 1")),
    limit.acquire(controller.signal, { retry: true }).then(() => order.push("retry 2"), () => order.push("left")),
    limit.acquire(undefined, { retry: true }).then(() => order.push("retry 3")),
  ];
  controller.abort();
  await waiting[3];
  for (let n = 0; n < 4; n++) {
    limit.release();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await Promise.all(waiting);
  assert.deepEqual(order, ["left", "retry 1", "retry 3", "first 1", "first 2"]);
});

Deno.test("a timeout counts however long before the last change its call began", () => {
  let now = 0;
  const limit = new AdaptiveLimit({ initial: 64, max: 64, now: () => now });
  void limit.acquire(); // the call that will time out, begun at 0
  // Busy windows at the maximum, 100 ms each: the limit stays where it is.
  for (let i = 0; i < 300; i++) {
    void limit.acquire();
    now += 100;
    limit.release({ latencyMs: 100, overload: false });
  }
  assert.equal(limit.limit, 64);
  limit.release({ latencyMs: now, overload: true });
  assert.ok(limit.limit < 64, `limit ${limit.limit} after a timeout`);
});

// Every kind of agent there is: Archestra's /v1 and /v2, an SDK 1.x server, the SDK's 0.3 layer.
for (const { name, flavour, api, version } of AGENT_FLAVOURS) {
  Deno.test(`${name}: overload is a timeout, HTTP 429/503, or a -32603 about capacity; not a -32603 about the message`, async () => {
    const agent = startDemoAgent({
      flavour,
      behaviours: {
        limited: { rpcFailTimes: 1 }, // "LLM provider error: 429 rate limit exceeded, retry later"
        broken: { rpcError: { code: -32603, message: "Internal error: cannot render the prompt" } },
        busy: { failTimes: 1, failStatus: 503 },
        slow: { latencyMs: 200 },
      },
    });
    const send = async (promptId: string, timeoutMs = 5_000) => {
      const outcome = await sendMessage({
        url: `${agent.url}/${api}/a2a/${promptId}`,
        token: undefined,
        version,
        message: { messageId: crypto.randomUUID(), text: "hi", metadata: {} },
        timeoutMs,
      });
      return "failure" in outcome ? outcome.failure.overload === true : "answered";
    };
    try {
      assert.equal(await send("limited"), true);
      assert.equal(await send("broken"), false);
      assert.equal(await send("busy"), true);
      assert.equal(await send("slow", 20), true);
    } finally {
      await agent.close();
    }
  });
}

Deno.test("a burst of timeouts together costs one multiplicative decrease: a slow agent's limit is back within a minute", () => {
  let now = 0;
  const limit = new AdaptiveLimit({ max: 32, initial: 32, now: () => now });
  /** Keeps the limit full of 10 s calls for `ms` of simulated time (or until `until`); each ends after 10 s. */
  const run = (ms: number, until = () => false) => {
    const ends: number[] = [];
    const stop = now + ms;
    while (now < stop && !until()) {
      while (limit.inFlight < limit.limit) {
        void limit.acquire();
        ends.push(now + 10_000);
      }
      ends.sort((a, b) => a - b);
      now = ends.shift()!;
      limit.release({ latencyMs: 10_000, overload: false });
    }
    while (ends.length) (now = Math.max(now, ends.shift()!), limit.release({ latencyMs: 10_000, overload: false }));
  };
  run(120_000); // the agent's floor is known, the limit at 32
  assert.equal(limit.limit, 32);
  // It stalls for a moment: the 32 calls in flight all time out within one round trip.
  for (let i = 0; i < 32; i++) void limit.acquire();
  for (let i = 0; i < 32; i++) {
    now += 50;
    limit.release({ latencyMs: 30_000, overload: true });
  }
  // One cut to 0.9 × the calls in flight: the other timeouts began before it, and it counted them.
  assert.equal(limit.limit, Math.floor(32 * 0.9), "the burst cost one cut, not a slot per timeout");
  // Healthy again: the limit climbs back to 90% of where it was within a minute of simulated time.
  const stalled = now;
  run(600_000, () => limit.limit >= 29);
  assert.ok(now - stalled <= 60_000, `back at ${limit.limit} after ${Math.round((now - stalled) / 1000)} s`);
});
