/**
 * How agents really fail, on every agent flavour: a provider that rate-limits each request's first
 * call, one agent of a host failing every call while the others are fine, a stop in the middle of
 * it all, and (Archestra's `/v2`) a message id the agent has already answered.
 */
import assert from "node:assert/strict";
import { demoReply, startDemoAgent } from "../../src/agent/demo_agent.ts";
import { AgentCircuits } from "../../src/a2a/agent_circuits.ts";
import { invokeJob } from "../../src/stages/invoke.ts";
import type { Job } from "../../src/model.ts";
import { ofGeneration, readyJob } from "../unit/helpers.ts";
import { onePromptPipeline, pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { a2aOf, AGENT_FLAVOURS } from "../support/flavours.ts";
import { createTopics, keyedEvents, produce, readRecords, testKafka, topicSize, uniqueId } from "../support/kafka.ts";
import { sample } from "../support/prometheus.ts";
import { until, within } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

for (const agent of AGENT_FLAVOURS) {
  Deno.test(
    `${agent.name}: a burst whose provider rate-limits each request once is answered, retries first, no outage`,
    integration,
    async () => {
      const topic = `burst-${uniqueId()}.events`;
      const total = 200;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic]);
      // Each message's first call answers -32603 "429 rate limit", its retry succeeds (FAKE_LLM_FAIL_FIRST).
      const server = startDemoAgent({ flavour: agent.flavour, behaviours: { p: { rpcFailTimes: 1, latencyMs: 10 } } });
      await produce(kafka, topic, keyedEvents(total));
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([
          onePromptPipeline("burst", topic, "p", "delivery: { retries: { max: 3, backoff: 50ms } }\n"),
        ]),
        archestraUrl: server.url,
        archestraA2a: a2aOf(agent.api),
      });
      try {
        const replies = await readRecords(kafka, [`${topic}.responses`], total);
        assert.equal(new Set(replies.map((r) => r.key)).size, total, "every event answered once");
        assert.equal(bridge.stats.circuitOpenings, 0, "a failure of one request is no outage");
        // A retry goes before first calls waiting for a slot: answers come from the start of the
        // burst, not after its last first call has failed.
        const sends = server.requests.filter((r) => r.op === "send");
        const seen = new Set<string>();
        const firstRetry = sends.findIndex((r) => seen.has(r.message!.messageId!) || !seen.add(r.message!.messageId!));
        assert.ok(firstRetry >= 0 && firstRetry < 50, `the first retry was call ${firstRetry} of ${sends.length}`);
        assert.equal(sends.length, 2 * total, "one rate-limited call and one answered call per event");
      } finally {
        await bridge.stop();
        await server.close();
      }
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
    },
  );

  Deno.test(
    `${agent.name}: one agent failing every call pauses only its own pipeline; the others are answered, its events end in the DLQ`,
    integration,
    async () => {
      const id = uniqueId();
      const [support, orders, broken] = ["support", "orders", "broken"].map((name) => `${name}-${id}.events`);
      const { kafka } = await testKafka();
      await createTopics(kafka, [support, orders, broken]);
      // One Archestra serves every prompt; "broken"'s LLM provider fails every call (a revoked key).
      const server = startDemoAgent({ flavour: agent.flavour, behaviours: { broken: { rpcFailTimes: 1_000_000 } } });
      const retries = "delivery: { retries: { max: 2, backoff: 20ms } }\n";
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([
          onePromptPipeline("support", support, "support", retries),
          onePromptPipeline("orders", orders, "orders", retries),
          onePromptPipeline("broken", broken, "broken", retries),
        ]),
        archestraUrl: server.url,
        archestraA2a: a2aOf(agent.api),
        probeDelayMs: 50,
        maxProbeDelayMs: 100,
      });
      try {
        await produce(kafka, broken, keyedEvents(20, "b"));
        await until(() => bridge.stats.circuitOpenings >= 1, "the broken agent's circuit to open");
        // Produced while the broken agent's circuit is open: the other pipelines flow.
        await produce(kafka, support, keyedEvents(40, "s"));
        await produce(kafka, orders, keyedEvents(40, "o"));
        const replies = await readRecords(kafka, [`${support}.responses`, `${orders}.responses`], 80);
        assert.equal(new Set(replies.map((r) => `${r.topic} ${r.key}`)).size, 80);
        const dead = await readRecords(kafka, [`${broken}.dlq`], 20);
        assert.equal(new Set(dead.map((r) => r.key)).size, 20, "each of the broken agent's events once");
        assert.ok(dead.every((r) => r.headers["x-error-class"] === "exhausted"), "exhausted, its card answering");
        assert.ok(dead.every((r) => Number(r.headers["x-error-attempts"]) <= 3), "within its retries");
        const metrics = await bridge.metrics.registry.metrics();
        const hostLabel = new URL(server.url).origin;
        assert.equal(
          sample(metrics, "agentstream_circuit_open", { agent: hostLabel }),
          undefined,
          "the host never opened",
        );
        for (const healthy of ["support", "orders"]) {
          const label = `${server.url}/${agent.api}/a2a/${healthy}`;
          assert.equal(
            sample(metrics, "agentstream_circuit_open", { agent: label }),
            undefined,
            `${healthy} never opened`,
          );
        }
      } finally {
        await bridge.stop();
        await server.close();
      }
      assert.equal(await topicSize(kafka, `${support}.dlq`), 0);
      assert.equal(await topicSize(kafka, `${orders}.dlq`), 0);
    },
  );
}

// With agent_limits of 2 calls a second and a fixed concurrency of 100, most calls wait in its queue.
for (const limits of [false, true]) {
  Deno.test(
    `a stop in the middle of a rate-limited burst ends every wait at once${
      limits ? ", in agent_limits too" : ""
    }: the bridge stops well within its grace`,
    integration,
    async () => {
      const topic = `stop-${uniqueId()}.events`;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic]);
      const server = startDemoAgent({ behaviours: { p: { rpcFailTimes: 1, latencyMs: 300 } } });
      await produce(kafka, topic, keyedEvents(200));
      const grace = 30_000;
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([
          onePromptPipeline(
            "stop",
            topic,
            "p",
            limits
              ? "delivery: { retries: { max: 3, backoff: 50ms }, concurrency: 100 }\n" +
                "agent_limits: [{ prompt_id: p, rate: { calls: 2, per: 1s } }]\n"
              : "delivery: { retries: { max: 3, backoff: 50ms } }\n",
          ),
        ]),
        archestraUrl: server.url,
        shutdownGraceMs: grace,
      });
      let stoppedIn = Number.POSITIVE_INFINITY;
      try {
        await until(() => bridge.stats.replied >= 2, "the first replies");
        const began = performance.now();
        await bridge.stop();
        stoppedIn = performance.now() - began;
      } finally {
        await bridge.stop();
        await server.close();
      }
      // Calls already made may finish (300 ms each); nothing waits for a slot or a retry meanwhile.
      assert.ok(stoppedIn < grace / 3, `stopped in ${Math.round(stoppedIn)} ms (grace ${grace} ms)`);
      assert.ok(bridge.stats.replied < 200, "stopped in the middle");
      assert.equal(bridge.stats.deadLettered, 0, "nothing failed for the stop");
    },
  );
}

Deno.test(
  "Archestra /v2: events it has answered before (a redelivery) are sent again under new ids and answered, none dead-lettered",
  integration,
  async () => {
    const topic = `seen-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const server = startDemoAgent({ flavour: "archestra-v1" });
    await produce(kafka, topic, keyedEvents(10));
    const run = async () => {
      // Another group reads the same offsets: the same message ids, as a redelivery after a crash has.
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([onePromptPipeline("seen", topic, "p")]),
        archestraUrl: server.url,
        archestraA2a: "1.0",
      });
      try {
        await until(() => bridge.stats.replied + bridge.stats.deadLettered >= 10, "ten outcomes");
        return {
          replied: bridge.stats.replied,
          resent: sample(await bridge.metrics.registry.metrics(), "agentstream_messages_resent_total", {
            pipeline: "seen",
            route: "r",
            agent: "p",
          }),
        };
      } finally {
        await bridge.stop();
      }
    };
    try {
      assert.deepEqual(await run(), { replied: 10, resent: undefined });
      assert.deepEqual(await run(), { replied: 10, resent: 10 }, "every id seen: each sent again, once");
      const refusals = server.requests.filter((r) => r.api === "v2").length;
      assert.equal(refusals, 30, "ten answered, ten refused as seen, ten answered under new ids");
    } finally {
      await server.close();
    }
    assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
    assert.equal(await topicSize(kafka, `${topic}.responses`), 20);
  },
);

Deno.test("two agents of a host that cannot be reached open its circuit; a healthy agent there is its probe, and flows", async () => {
  // "a" and "b" answer 502 (as a proxy in front of a host that is down would); "c" is fine.
  const server = startDemoAgent({
    behaviours: { a: { failTimes: 1_000_000, failStatus: 502 }, b: { failTimes: 1_000_000, failStatus: 502 } },
  });
  const changes: string[] = [];
  const circuits = new AgentCircuits({
    threshold: 1,
    probeDelayMs: 20,
    maxProbeDelayMs: 50,
    onChange: ({ key, state }) => changes.push(`${key.split(" ")[0]} ${state}`),
    onHolding: () => {},
  });
  const stopping = new AbortController();
  const context = {
    archestraUrl: server.url,
    circuitFor: circuits.agent,
    hostCircuitFor: circuits.host,
    stopping: stopping.signal,
    sleep: () => Promise.resolve(),
  };
  try {
    // Retries of "a" and "b" keep waiting on the host's circuit (their agents stay down).
    const failing = ["a", "b", "a", "b"].map((id) => invokeJob(readyJob(id, { retries: 100 }), context));
    const host = circuits.host(`${server.url}/v1/a2a/c`);
    await until(() => host.open, "the host's circuit to open");
    // Its first call is the host's probe (its own agent's circuit is closed, unlike the retries of
    // "a" and "b" waiting there too): answered, it closes the host's circuit.
    for (let n = 0; n < 3; n++) {
      const healthy = await within(invokeJob(readyJob("c"), context), "a healthy agent's call on the host", 10_000);
      assert.equal(healthy.reply?.text, demoReply("c", "hello agent"), healthy.failure?.message);
      assert.equal(host.open, false, "the host answered");
    }
    const [a, b] = ["a", "b"].map((id) => circuits.agent(`${server.url}/v1/a2a/${id}`));
    assert.ok(a.open && b.open, "the agents that cannot be reached stay paused on their own circuits");
    assert.ok(changes.includes("host down"), changes.join());
    stopping.abort();
    const stopped = await Promise.all(failing);
    assert.ok(stopped.every((job) => job.abandoned && !job.failure), "the unreachable agents' messages wait, not fail");
  } finally {
    stopping.abort();
    circuits.dispose();
    await server.close();
  }
});

/** Circuits that open at the first failure, probing after `probeDelayMs` (doubling to `maxProbeDelayMs`), and an invoke context using them. */
function circuitsFor(url: string, api: "v1" | "v2", probeDelayMs: number, maxProbeDelayMs: number) {
  const circuits = new AgentCircuits({
    threshold: 1,
    probeDelayMs,
    maxProbeDelayMs,
    onChange: () => {},
    onHolding: () => {},
  });
  const context = {
    archestraUrl: url,
    archestraA2a: a2aOf(api),
    circuitFor: circuits.agent,
    hostCircuitFor: circuits.host,
    sleep: () => Promise.resolve(),
  };
  return { circuits, context };
}

for (const { name, flavour, api } of AGENT_FLAVOURS) {
  Deno.test(
    `${name}: after a rebalance during an outage, recovery takes at most two probe intervals, however many waited`,
    async () => {
      const server = startDemoAgent({ flavour, behaviours: { down: { failTimes: 1_000_000, failStatus: 503 } } });
      const { circuits, context } = circuitsFor(server.url, api, 200, 30_000);
      /** A job of one generation of the ledger: stale once `generation` aborts. */
      const jobOf = (generation: AbortController, n: number): Job => {
        const job = ofGeneration(readyJob("down", { retries: 100 }), generation);
        // Forty messages of their own: the agent counts failures per message id.
        return {
          ...job,
          ctx: { ...job.ctx, messageId: `${job.ctx.messageId.slice(0, -4)}${String(1000 + n).slice(1)}` },
        };
      };
      try {
        // Forty messages wait on the open circuit of an agent that is down.
        const before = new AbortController();
        const waiting = Array.from({ length: 40 }, (_, n) => invokeJob(jobOf(before, n), context));
        const circuit = circuits.agent(`${server.url}/${api}/a2a/down`);
        await until(() => circuit.open, "the agent's circuit to open");
        // The group rebalances: all forty go stale (Kafka delivers them again), and the agent is back.
        before.abort();
        const stale = await within(Promise.all(waiting), "the stale waiters to give up", 5_000);
        assert.ok(stale.every((job) => job.abandoned), "every stale waiter abandoned, none failed");
        server.setBehaviour("down", {});
        const back = performance.now();
        // The messages come again: the next probe is made within two probe intervals, and all flow.
        const after = new AbortController();
        const again = await within(
          Promise.all(Array.from({ length: 40 }, (_, n) => invokeJob(jobOf(after, n), context))),
          "the redelivered messages",
          10_000,
        );
        assert.ok(again.every((job) => job.reply), again.find((job) => !job.reply)?.failure?.message);
        const took = performance.now() - back;
        assert.ok(took <= 2 * 400 + 300, `recovered in ${Math.round(took)} ms (probe interval 200–400 ms)`);
      } finally {
        circuits.dispose();
        await server.close();
      }
    },
  );
}

for (const { name, flavour, api } of AGENT_FLAVOURS) {
  Deno.test(
    `${name}: a probe cut short by a rebalance hands the probe on: the redelivered message probes, and flows`,
    async () => {
      const hung = Promise.withResolvers<void>();
      const server = startDemoAgent({ flavour, behaviours: { hung: { gate: hung.promise } } });
      const { circuits, context } = circuitsFor(server.url, api, 100, 200);
      const jobOf = (generation: AbortController) =>
        ofGeneration(readyJob("hung", { retries: 3, timeout: "10s" }), generation);
      const circuit = circuits.agent(`${server.url}/${api}/a2a/hung`);
      try {
        circuit.trip(); // the agent stopped answering
        const before = new AbortController();
        const probing = invokeJob(jobOf(before), context);
        await server.waitForRequests(1); // the probe is out, and hangs
        before.abort(); // the group rebalances
        assert.equal((await probing).abandoned, true);
        hung.resolve(); // the agent answers again
        const again = await within(invokeJob(jobOf(new AbortController()), context), "the redelivered message", 5_000);
        assert.ok(again.reply, again.failure?.message);
        assert.equal(circuit.open, false);
      } finally {
        hung.resolve();
        circuits.dispose();
        await server.close();
      }
    },
  );
}
