/** invoke against a real A2A server (the demo agent, over HTTP): results, failure classes, retries. */
import assert from "node:assert/strict";
import { demoReply, startDemoAgent } from "../../src/agent/demo_agent.ts";
import { backoffDelay, invokeJob, MAX_RESENDS, resentMessageId } from "../../src/stages/invoke.ts";
import { parseRetryAfter } from "../../src/a2a/send_message.ts";
import { ofGeneration, readyJob as ready } from "../unit/helpers.ts";
import { Circuit } from "../../src/circuit.ts";
import type { AgentLimits } from "../../src/a2a/agent_limits.ts";
import { unledgered } from "../../src/delivery/ledger.ts";
import { AGENT_FLAVOURS } from "../support/flavours.ts";

function recordingSleep() {
  const waits: number[] = [];
  return { waits, sleep: (ms: number) => (waits.push(ms), Promise.resolve()) };
}

Deno.test("invoke() turns a Message result into a reply, sending the token", async () => {
  const agent = startDemoAgent({ token: "s3cret" });
  try {
    const j = await invokeJob(ready("p1"), { archestraUrl: agent.url, archestraToken: "s3cret" });
    assert.equal(j.failure, undefined);
    assert.equal(j.reply?.text, demoReply("p1", "hello agent"));
    assert.equal(j.reply?.attempts, 1);
    assert.equal(j.reply?.url, `${agent.url}/v1/a2a/p1`);
    assert.equal(agent.requests[0].authorization, "Bearer s3cret");
  } finally {
    await agent.close();
  }
});

Deno.test("invoke() fails permanently, without retrying, on a JSON-RPC error and on HTTP 400", async () => {
  const agent = startDemoAgent({
    behaviours: { rpc: { rpcError: { code: -32001, message: "nope" } }, bad: { failTimes: 9, failStatus: 400 } },
  });
  try {
    const { waits, sleep } = recordingSleep();
    for (const [prompt, pattern] of [["rpc", /JSON-RPC error -32001: nope/], ["bad", /HTTP 400/]] as const) {
      const j = await invokeJob(ready(prompt), { archestraUrl: agent.url, sleep });
      assert.equal(j.failure?.class, "permanent", prompt);
      assert.equal(j.failure?.attempts, 1);
      assert.match(j.failure!.message, pattern);
    }
    assert.deepEqual(waits, []);
  } finally {
    await agent.close();
  }
});

Deno.test("invoke() retries 5xx with backoff, honours Retry-After, and ends exhausted", async () => {
  const agent = startDemoAgent({ behaviours: { busy: { failTimes: 99, failStatus: 429, retryAfter: 1 } } });
  try {
    const { waits, sleep } = recordingSleep();
    const j = await invokeJob(ready("busy"), { archestraUrl: agent.url, sleep, random: () => 0.5 });
    assert.equal(j.failure?.class, "exhausted");
    assert.equal(j.failure?.attempts, 3);
    assert.match(j.failure!.message, /HTTP 429/);
    assert.deepEqual(waits, [1000, 1000], "Retry-After (1 s) outweighs the 100 ms backoff");
  } finally {
    await agent.close();
  }
});

Deno.test("invoke() treats a timeout and a refused connection as transient", async () => {
  const agent = startDemoAgent({ latencyMs: 2_000 });
  try {
    const { waits, sleep } = recordingSleep();
    const slow = await invokeJob(ready("p", { timeout: "100ms", retries: 1 }), { archestraUrl: agent.url, sleep });
    assert.equal(slow.failure?.class, "exhausted");
    assert.match(slow.failure!.message, /no answer within 100 ms/);
    assert.equal(waits.length, 1);
  } finally {
    await agent.close();
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await invokeJob(ready("p", { retries: 0 }), { archestraUrl: `http://127.0.0.1:${port}` });
  assert.equal(refused.failure?.class, "exhausted");
  assert.match(refused.failure!.message, /cannot reach the agent/);
});

Deno.test("invoke() abandons a call cut short by shutdown instead of dead-lettering it", async () => {
  const agent = startDemoAgent({ latencyMs: 5_000 });
  try {
    const abort = new AbortController();
    const pending = invokeJob(ready("p"), { archestraUrl: agent.url, signal: abort.signal });
    abort.abort();
    const j = await pending;
    assert.equal(j.abandoned, true);
    assert.equal(j.failure, undefined);
  } finally {
    await agent.close();
  }
});

Deno.test("backoff doubles up to the cap, with up to half of it jittered", () => {
  const retries = { max: 5, backoffMs: 100, maxBackoffMs: 350 };
  assert.deepEqual([1, 2, 3, 4].map((n) => backoffDelay(n, retries, () => 0)), [50, 100, 175, 175]);
  assert.deepEqual([1, 2, 3].map((n) => backoffDelay(n, retries, () => 0.999999)).map(Math.round), [100, 200, 350]);
});

Deno.test("Retry-After is read as seconds or as an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
  assert.equal(parseRetryAfter("soon"), undefined);
  assert.equal(parseRetryAfter(null), undefined);
});

Deno.test("invoke() dead-letters an answer of the wrong shape instead of failing the stream", async () => {
  const agent = startDemoAgent({
    behaviours: {
      nothing: { rawResult: null },
      statusless: { rawResult: { kind: "task", id: "t-1" } },
      oddparts: { rawResult: { kind: "message", role: "agent", messageId: "m", parts: "hello" } },
    },
  });
  try {
    for (const prompt of ["nothing", "statusless", "oddparts"]) {
      const j = await invokeJob(ready(prompt), { archestraUrl: agent.url });
      assert.equal(j.failure?.class, "permanent", prompt);
      assert.equal(j.reply, undefined);
    }
  } finally {
    await agent.close();
  }
});

Deno.test("invoke() treats a body cut off by the timeout as transient", async () => {
  const agent = startDemoAgent({ behaviours: { stall: { stallBody: true } } });
  try {
    const j = await invokeJob(ready("stall", { timeout: "300ms", retries: 0 }), { archestraUrl: agent.url });
    assert.equal(j.failure?.class, "exhausted");
    assert.match(j.failure!.message, /no answer within 300 ms/);
  } finally {
    await agent.close();
  }
});

Deno.test("invoke() honours Retry-After only up to max_backoff", async () => {
  const agent = startDemoAgent({ behaviours: { later: { failTimes: 1, failStatus: 503, retryAfter: 3600 } } });
  try {
    const { waits, sleep } = recordingSleep();
    const j = await invokeJob(ready("later"), { archestraUrl: agent.url, sleep, random: () => 0 });
    assert.equal(j.reply?.attempts, 2);
    assert.deepEqual(waits, [1000], "an hour asked, max_backoff (1 s) waited");
  } finally {
    await agent.close();
  }
});

Deno.test("a probe that throws hands the probe on: the next caller waiting on the open circuit still gets through", async () => {
  const agent = startDemoAgent();
  const circuit = new Circuit({ threshold: 1, probeDelayMs: 5, maxProbeDelayMs: 5 });
  let calls = 0;
  // A bug on the first call (not an agent failure): it is that job's failure, not the circuit's end.
  const limits = {
    run: <T>(_url: string, call: () => Promise<T>) => ++calls === 1 ? Promise.reject(new Error("bug")) : call(),
  } as unknown as AgentLimits;
  const context = { archestraUrl: agent.url, circuitFor: () => circuit, limits };
  try {
    circuit.trip();
    const first = invokeJob(ready("p1"), context);
    const second = invokeJob(ready("p2"), context);
    await assert.rejects(first, /bug/);
    const answered = await second;
    assert.equal(answered.reply?.text, demoReply("p2", "hello agent"));
    assert.equal(circuit.open, false);
  } finally {
    circuit.dispose();
    await agent.close();
  }
});

Deno.test("a job whose ack went stale stops retrying: its message is delivered again", async () => {
  const agent = startDemoAgent({ behaviours: { p1: { failTimes: 10 } } });
  let stale = false;
  const job = {
    ...ready("p1", { retries: 5 }),
    ack: {
      ...unledgered,
      get stale() {
        return stale;
      },
    },
  };
  try {
    const done = await invokeJob(job, {
      archestraUrl: agent.url,
      sleep: () => (stale = true, Promise.resolve()), // the assignment changes during the first backoff
    });
    assert.equal(done.abandoned, true);
    assert.equal(agent.requests.length, 1, "no call after the job went stale");
  } finally {
    await agent.close();
  }
});

for (const flavour of AGENT_FLAVOURS.filter((f) => f.name !== "Archestra /v1")) {
  Deno.test(
    `${flavour.name}: a job whose partition is revoked while it polls a task stops at once, and never cancels the task`,
    async () => {
      const agent = startDemoAgent({
        flavour: flavour.flavour,
        behaviours: { slow: { task: "working", workMs: 600_000 } },
      });
      const revoked = new AbortController();
      const job = ofGeneration(ready("slow", { longRunning: true, timeout: "3s" }), revoked);
      try {
        const running = invokeJob(job, { archestraUrl: agent.url, archestraA2a: flavour.version });
        // The task is sent and polled; then the partition is revoked (its new owner resumes the task).
        await agent.waitForRequests(2);
        revoked.abort();
        const done = await running;
        assert.equal(done.abandoned, true, "left for the partition's new owner");
        assert.equal(done.failure, undefined);
        const ops = agent.requests.map((r) => r.op);
        assert.ok(!ops.includes("cancel"), `the stale job cancelled nothing: ${ops.join()}`);
        assert.ok(ops.length <= 3, `no calls after the revoke but one cut short: ${ops.join()}`);
      } finally {
        await agent.close();
      }
    },
  );
}

Deno.test("a message id the agent has seen is sent again under new ids, each derived from the original, and no more than MAX_RESENDS times", async () => {
  const seen = { code: -32602, message: "A message with the given ID already exists" };
  const agent = startDemoAgent({ behaviours: { always: { rpcError: seen } } });
  try {
    const job = ready("always");
    const done = await invokeJob(job, { archestraUrl: agent.url, sleep: () => Promise.resolve() });
    assert.equal(done.failure?.class, "permanent", "not a class of its own in the DLQ");
    assert.match(done.failure!.message, /already exists \(and for each of 10 new ids\)/);
    const ids = agent.requests.map((r) => r.message?.messageId);
    assert.deepEqual(ids, [
      job.ctx.messageId,
      ...Array.from({ length: MAX_RESENDS }, (_, n) => resentMessageId(job.ctx.messageId, n + 1)),
    ]);
    assert.equal(new Set(ids).size, MAX_RESENDS + 1);
  } finally {
    await agent.close();
  }
});
