/**
 * The same scenarios against every kind of agent there is: Archestra's `/v1` (bare Message, errors
 * at HTTP 200), Archestra's `/v2` (A2A 1.0), a strict `@a2a-js/sdk` 1.x server, and the SDK's 0.3
 * compatibility layer. Each row of the table in docs/agents.md ("Agents it works with") is a test here.
 */
import assert from "node:assert/strict";
import { demoReply, startDemoAgent } from "../../src/agent/demo_agent.ts";
import { AgentCards } from "../../src/a2a/agent_cards.ts";
import { Circuit } from "../../src/circuit.ts";
import { invokeJob } from "../../src/stages/invoke.ts";
import { readyJob } from "../unit/helpers.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { a2aOf, AGENT_FLAVOURS } from "../support/flavours.ts";
import { createTopics, produce, readRecords, testKafka, topicSize, uniqueId } from "../support/kafka.ts";
import { sample } from "../support/prometheus.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

/** Each flavour, with whether it has tasks and how long the bridge test refuses its token. */
const AGENTS = AGENT_FLAVOURS.map((flavour) => ({
  ...flavour,
  // Archestra's /v1 has no tasks.
  tasks: flavour.name !== "Archestra /v1",
  // Archestra /v1, the main target: the twelve seconds.
  refusedMs: flavour.name === "Archestra /v1" ? 12_000 : 1_000,
}));

const noWait = (ms: number) => (void ms, Promise.resolve());

for (const agent of AGENTS) {
  const context = (url: string, extra: Record<string, unknown> = {}) => ({
    archestraUrl: url,
    archestraA2a: a2aOf(agent.api),
    sleep: noWait,
    ...extra,
  });

  Deno.test(`${agent.name}: a reply, and a -32603 (LLM rate limit) retried until it succeeds`, async () => {
    const server = startDemoAgent({ flavour: agent.flavour, behaviours: { limited: { rpcFailTimes: 2 } } });
    try {
      const plain = await invokeJob(readyJob("plain"), context(server.url));
      assert.equal(plain.failure, undefined, plain.failure?.message);
      assert.equal(plain.reply?.text, demoReply("plain", "hello agent"));
      assert.deepEqual(plain.reply?.parts, [{ kind: "text", text: demoReply("plain", "hello agent") }]);
      const limited = await invokeJob(readyJob("limited"), context(server.url));
      assert.equal(limited.failure, undefined, limited.failure?.message);
      assert.equal(limited.reply?.attempts, 3);
      assert.equal(server.requests.filter((r) => r.promptId === "limited").length, 3);
      assert.ok(server.requests.every((r) => r.api === agent.api));
      if (agent.api === "v2") assert.ok(server.requests.every((r) => r.a2aVersion === "1.0"), "A2A-Version: 1.0 sent");
    } finally {
      await server.close();
    }
  });

  Deno.test(`${agent.name}: a message the agent keeps failing, alone, ends 'exhausted' because the card answers`, async () => {
    const server = startDemoAgent({ flavour: agent.flavour, behaviours: { poison: { rpcFailTimes: 1_000 } } });
    const circuit = new Circuit({ threshold: 100, probeDelayMs: 10 });
    try {
      // Nobody else calls: only the card can say the agent is up and the message is the problem.
      const job = await invokeJob(
        readyJob("poison", { retries: 2 }),
        context(server.url, { circuitFor: () => circuit, cards: new AgentCards() }),
      );
      assert.equal(job.failure?.class, "exhausted", job.failure?.message);
      assert.equal(job.failure?.attempts, 3, "its retry budget, not one more");
      assert.equal(circuit.open, false, "not taken for an outage");
      assert.equal(server.requests.filter((r) => r.op === "send").length, 3);
    } finally {
      circuit.dispose();
      await server.close();
    }
  });

  Deno.test(`${agent.name}: a JSON-RPC error is permanent; a refused token or unknown agent is 'refused'`, async () => {
    const server = startDemoAgent({
      flavour: agent.flavour,
      token: "right",
      prompts: ["broken", "known"],
      behaviours: { broken: { rpcError: { code: -32001, message: "no such thing" } } },
    });
    try {
      const broken = await invokeJob(readyJob("broken"), context(server.url, { archestraToken: "right" }));
      assert.equal(broken.failure?.class, "permanent");
      assert.match(broken.failure!.message, /-32001: no such thing/);
      // Without a circuit to wait on, invokeJob reports the refusal; the bridge waits instead (below).
      const wrongToken = await invokeJob(readyJob("known"), context(server.url, { archestraToken: "wrong" }));
      assert.equal(wrongToken.failure?.class, "refused", wrongToken.failure?.message);
      const unknown = await invokeJob(readyJob("nobody"), context(server.url, { archestraToken: "right" }));
      assert.equal(unknown.failure?.class, "refused", unknown.failure?.message);
    } finally {
      await server.close();
    }
  });

  if (agent.tasks) {
    Deno.test(`${agent.name}: a long-running task is sent without blocking, polled, and cancelled at its timeout`, async () => {
      const server = startDemoAgent({
        flavour: agent.flavour,
        behaviours: { quick: { task: "working", workMs: 300 }, endless: { task: "working", workMs: 600_000 } },
      });
      try {
        const recorded: string[] = [];
        const tasks = {
          get: () => undefined,
          remember: (_key: string, task: { taskId: string }) => (recorded.push(task.taskId), Promise.resolve()),
          forget: () => {},
        };
        // deno-lint-ignore no-explicit-any
        const ctx = context(server.url, { tasks: tasks as any });
        const quick = await invokeJob(readyJob("quick", { longRunning: true }), ctx);
        assert.equal(quick.failure, undefined, quick.failure?.message);
        assert.equal(quick.reply?.text, demoReply("quick", "hello agent"));
        assert.deepEqual(recorded, [quick.reply?.taskId], "the task id was recorded before polling");
        const ops = server.requests.filter((r) => r.promptId === "quick").map((r) => r.op);
        assert.equal(ops[0], "send");
        assert.ok(ops.slice(1).length >= 1 && ops.slice(1).every((op) => op === "get"), ops.join());

        const endless = await invokeJob(readyJob("endless", { longRunning: true, timeout: "1s" }), ctx);
        assert.equal(endless.failure?.class, "timeout", endless.failure?.message);
        assert.equal(endless.failure?.attempts, 1, "a timed-out task is not retried");
        assert.ok(endless.failure?.taskId);
        assert.match(endless.failure!.message, /cancelled/);
        const cancels = server.requests.filter((r) => r.promptId === "endless" && r.op === "cancel");
        assert.deepEqual(cancels.map((r) => r.taskId), [endless.failure?.taskId]);
      } finally {
        await server.close();
      }
    });

    Deno.test(`${agent.name}: a streamed answer is folded into one reply`, async () => {
      const server = startDemoAgent({ flavour: agent.flavour, behaviours: { streams: { stream: true } } });
      try {
        const job = readyJob("streams");
        // The route asks for a stream; the agent's card says it streams.
        const routed = { ...job, route: { ...job.route!, stream: true } };
        const done = await invokeJob(routed, context(server.url, { cards: new AgentCards() }));
        assert.equal(done.failure, undefined, done.failure?.message);
        assert.equal(done.reply?.text, demoReply("streams", "hello agent"));
        assert.deepEqual(server.requests.filter((r) => r.promptId === "streams").map((r) => r.op), ["stream"]);
      } finally {
        await server.close();
      }
    });
  }

  Deno.test(
    `${agent.name}: a token refused for ${
      agent.refusedMs / 1000
    } s dead-letters nothing; every event is answered after`,
    integration,
    async () => {
      const topic = `interop-${uniqueId()}.events`;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic]);
      const refuse = await Deno.makeTempFile({ prefix: "refuse-" });
      const server = startDemoAgent({
        flavour: agent.flavour,
        behaviours: { p: { refuseWhile: refuse, rpcFailTimes: 1 } },
      });
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([
          `name: interop\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: p } }]\n`,
        ]),
        archestraUrl: server.url,
        archestraA2a: a2aOf(agent.api),
        probeDelayMs: 100,
        maxProbeDelayMs: 400,
      });
      try {
        // The seed's three events.
        await produce(kafka, topic, [
          { key: "CUST-001", value: JSON.stringify({ customer_id: "CUST-001", message: "Double charged" }) },
          { key: "ORD-123", value: JSON.stringify({ order_id: "ORD-123", event_type: "shipped" }) },
          { key: "conversion_rate", value: JSON.stringify({ metric_name: "conversion_rate", value: 3.5 }) },
        ]);
        await until(() => bridge.stats.refusals === 1, "the agent to refuse the bridge");
        assert.equal(bridge.readiness().agents, false, "not ready while refused");
        // Refused until the probes have gone on for the whole window (each probe is a refused call).
        const first = server.requests[0].at;
        await until(() => server.requests.at(-1)!.at - first >= agent.refusedMs, "probes while refused", 60_000);
        assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered while refused");
        await Deno.remove(refuse);
        const accepted = server.requests.length;
        const replies = await readRecords(kafka, [`${topic}.responses`], 3);
        const keys = replies.map((r) => r.key).sort();
        assert.deepEqual(keys, ["CUST-001", "ORD-123", "conversion_rate"]);
        for (const reply of replies) {
          const envelope = JSON.parse(reply.value!.toString());
          assert.match(envelope.reply.text, /^Demo agent \[p\] received/);
          // Each message's first accepted call met -32603: the reply is its retry.
          const calls = server.requests.slice(accepted).filter((r) =>
            r.message?.messageId === envelope.request.message_id
          );
          assert.ok(calls.length >= 2, `${reply.key}: ${calls.length} calls once accepted`);
        }
        assert.equal(bridge.stats.refusals, 1, "one refusal, however many messages met it");
        await until(() => bridge.readiness().ready, "ready again");
      } finally {
        await bridge.stop();
        await server.close();
        await Deno.remove(refuse).catch(() => {});
      }
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
      assert.equal(bridge.stats.deadLettered, 0);
    },
  );

  Deno.test(
    `${agent.name}: concurrency auto finds an agent that serves 8 calls at once and refuses more with -32603`,
    integration,
    async () => {
      const topic = `adaptive-${uniqueId()}.events`;
      const total = 400;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic], 2);
      const server = startDemoAgent({ flavour: agent.flavour, behaviours: { p: { capacity: 8, latencyMs: 40 } } });
      // Nothing about concurrency configured: `auto` is the default.
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([
          `name: adaptive\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: p } }]\n` +
          `delivery: { retries: { max: 5, backoff: 200ms } }\n`,
        ]),
        archestraUrl: server.url,
        archestraA2a: a2aOf(agent.api),
      });
      try {
        await produce(
          kafka,
          topic,
          Array.from({ length: total }, (_, n) => ({ key: `k${n % 97}`, value: JSON.stringify({ n }) })),
        );
        const replies = await readRecords(kafka, [`${topic}.responses`], total);
        assert.equal(
          new Set(replies.map((r) => r.headers["x-source-offset"] + r.headers["x-source-partition"])).size,
          total,
        );
        const refused = server.overCapacity("p");
        assert.ok(refused <= 0.1 * total, `${refused} calls refused for ${total} messages`);
        assert.ok(server.peakInFlight("p") <= 8);
        const limit = sample(await bridge.metrics.registry.metrics(), "agentstream_agent_concurrency_limit");
        assert.ok(limit !== undefined && limit >= 4 && limit <= 10, `limit ${limit}`);
      } finally {
        await bridge.stop();
        await server.close();
      }
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
      assert.equal(bridge.stats.deadLettered, 0);
    },
  );
}

Deno.test("an agent given by URL is spoken to in the version its card names; invoke.a2a overrides it", async () => {
  const v1 = startDemoAgent({ flavour: "a2a-1.0" });
  const v03 = startDemoAgent({ flavour: "a2a-0.3" });
  try {
    for (const server of [v1, v03]) {
      const job = readyJob("any");
      const target = { url: `${server.url}/v1/a2a/by-url` };
      const routed = { ...job, route: { ...job.route!, agents: [target] } };
      const done = await invokeJob(routed, { archestraUrl: "http://unused", cards: new AgentCards(), sleep: noWait });
      assert.equal(done.failure, undefined, `${server.flavour}: ${done.failure?.message}`);
      const [call] = server.requests.filter((r) => r.op === "send");
      assert.equal(call.method, server === v1 ? "SendMessage" : "message/send");
    }
    // Told to speak 0.3 to a strict 1.0 server, the bridge is refused (-32601/-32009), not dead-lettered.
    const job = readyJob("any");
    const routed = { ...job, route: { ...job.route!, agents: [{ url: `${v1.url}/v1/a2a/x` }], a2a: "0.3" as const } };
    const refused = await invokeJob(routed, { archestraUrl: "http://unused", sleep: noWait });
    assert.equal(refused.failure?.class, "refused", refused.failure?.message);
  } finally {
    await v1.close();
    await v03.close();
  }
});

Deno.test("a refused agent's circuit holds its calls until a probe is accepted, then lets all through", async () => {
  const refuse = await Deno.makeTempFile({ prefix: "refuse-" });
  const server = startDemoAgent({ behaviours: { p: { refuseWhile: refuse } } });
  const states: string[] = [];
  const circuit = new Circuit({
    probeDelayMs: 50,
    maxProbeDelayMs: 200,
    onChange: (_open, state) => states.push(state),
  });
  try {
    const calls = [1, 2, 3].map(() =>
      invokeJob(readyJob("p"), { archestraUrl: server.url, circuitFor: () => circuit })
    );
    await until(() => server.requests.length >= 5, "probes");
    assert.deepEqual(states, ["refused"]);
    await Deno.remove(refuse);
    const jobs = await Promise.all(calls);
    assert.ok(jobs.every((j) => j.reply && !j.failure), "every call answered");
    assert.ok(jobs.every((j) => j.reply!.attempts === 1), "waiting on a refusal spends no retry");
    assert.deepEqual(states, ["refused", "closed"]);
  } finally {
    circuit.dispose();
    await server.close();
    await Deno.remove(refuse).catch(() => {});
  }
});
