/**
 * Agent workflows on the real broker and the demo A2A agent: chaining pipelines on responses
 * topics (with a hop limit), one conversation per key, tasks that stop for input, reply shapes.
 */
import assert from "node:assert/strict";
import { demoReply, startDemoAgent } from "../../src/agent/demo_agent.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { committedOffsets, createTopics, produce, readRecords, testKafka, uniqueId } from "../support/kafka.ts";
import { until, within } from "../support/until.ts";
import { AGENT_FLAVOURS } from "../support/flavours.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test("a two-stage chain: replies classified critical go on to a second agent", integration, async () => {
  const topic = `chain-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic, `${topic}.responses`]);
  const agent = startDemoAgent({ behaviours: { support: { classify: true } } });
  const bridge = await startTestBridge({
    pipelines: pipelinesFrom([
      `name: support\nsource: { topics: [${topic}] }\n` +
      `routes: [{ name: answer, transform: { template: "{message}" }, invoke: { prompt_id: support } }]\n`,
      `name: escalation\nsource: { topics: [${topic}.responses] }\n` +
      `routes:\n  - name: critical\n    match: { fields: { reply.data.severity: critical } }\n` +
      `    transform: { template: "Escalate {source.key}: {reply.text}" }\n` +
      `    invoke: { prompt_id: escalation }\n`,
    ]),
    archestraUrl: agent.url,
  });
  try {
    await produce(kafka, topic, [
      { key: "C-1", value: JSON.stringify({ message: "I was charged twice" }) },
      { key: "C-2", value: JSON.stringify({ message: "How do I change my avatar?" }) },
    ]);
    const [escalated] = await readRecords(kafka, [`${topic}.responses.responses`], 1);
    const envelope = JSON.parse(escalated.value!.toString());
    assert.equal(escalated.key, "C-1", "only the critical reply went on");
    const supportReply = demoReply("support", "I was charged twice");
    assert.equal(envelope.request.text, `Escalate C-1: ${supportReply}`);
    assert.equal(envelope.reply.text, demoReply("escalation", `Escalate C-1: ${supportReply}`));
    assert.equal(escalated.headers["x-hop-count"], "2");
    const first = await readRecords(kafka, [`${topic}.responses`], 2);
    assert.deepEqual(first.map((r) => JSON.parse(r.value!.toString()).reply.data.severity).sort(), [
      "critical",
      "normal",
    ]);
    assert.equal(bridge.stats.skipped, 1, "the normal reply was skipped by the escalation pipeline");
  } finally {
    await bridge.stop();
    await agent.close();
  }
});

Deno.test("a chain deeper than chain.max_hops goes to the DLQ as a loop", integration, async () => {
  const topic = `loop-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic]);
  const agent = startDemoAgent({});
  // A pipeline that feeds on its own replies: without the limit it would never stop.
  const bridge = await startTestBridge({
    pipelines: pipelinesFrom([
      `name: echo\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: p } }]\n` +
      `publish: { responses: "${topic}" }\nchain: { max_hops: 3 }\n`,
    ]),
    archestraUrl: agent.url,
  });
  try {
    await produce(kafka, topic, [{ key: "k", value: JSON.stringify({ start: true }) }]);
    const [looped] = await readRecords(kafka, [`${topic}.dlq`], 1);
    assert.equal(looped.headers["x-error-stage"], "match");
    assert.equal(looped.headers["x-error-class"], "loop");
    assert.equal(looped.headers["x-hop-count"], "3");
    assert.equal(agent.requests.length, 3, "three hops were made, no more");
  } finally {
    await bridge.stop();
    await agent.close();
  }
});

for (const flavour of AGENT_FLAVOURS) {
  Deno.test(
    `${flavour.name}: invoke.context: key keeps one conversation per Kafka key across a restart; none sends none`,
    integration,
    async () => {
      const topic = `ctx-${uniqueId()}.events`;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic, `${topic}.responses`]);
      const agent = startDemoAgent({ flavour: flavour.flavour });
      const groupId = `ctx-${uniqueId()}`;
      const pipelines = pipelinesFrom([
        `name: talk\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: keyed, context: key } }]\n`,
        `name: plain\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: plain } }]\n`,
      ]);
      const bridge = () =>
        startTestBridge({ pipelines, archestraUrl: agent.url, archestraA2a: flavour.version, groupId });
      try {
        let running = await bridge();
        await produce(kafka, topic, [{ key: "alice", value: "{}" }, { key: "bob", value: "{}" }]);
        const firsts = await readRecords(kafka, [`${topic}.responses`], 4);
        await running.stop();
        // The key's second message, sent by a bridge that knows only what the first one kept.
        running = await bridge();
        await produce(kafka, topic, [{ key: "alice", value: "{}" }]);
        const replies = [...firsts, ...(await readRecords(kafka, [`${topic}.responses`], 6)).slice(4)];
        await running.stop();
        const envelopes = replies.map((r) => JSON.parse(r.value!.toString()));
        const keyed = envelopes.filter((e) => e.pipeline === "talk");
        assert.equal(keyed.length, 3, "every keyed message answered, none dead-lettered");
        const sent = agent.requests.filter((r) => r.promptId === "keyed" && r.op === "send");
        const sentContext = (key: string) =>
          sent.filter((r) => r.message?.metadata?.key === key).map((r) => r.message?.contextId);
        const [alice1, alice2] = sentContext("alice");
        const [bob] = sentContext("bob");
        // A key's conversation: the contextId its first message sent, or else the one the agent minted.
        const firstReply = (key: string) =>
          firsts.map((r) => JSON.parse(r.value!.toString())).find((e) => e.pipeline === "talk" && e.source.key === key);
        const conversation = alice1 ?? firstReply("alice").reply.context_id;
        assert.ok(conversation, "alice's first message had a conversation");
        assert.equal(alice2, conversation, "alice's second message, after a restart, goes on with it");
        assert.notEqual(bob ?? firstReply("bob").reply.context_id, conversation, "bob has his own");
        assert.ok(
          agent.requests.filter((r) => r.promptId === "plain").every((r) => r.message?.contextId === undefined),
          "context: none sends no contextId",
        );
      } finally {
        await agent.close();
      }
    },
  );
}

Deno.test(
  "Archestra /v2: a conversation the agent no longer knows starts anew, and the new id replaces the old",
  integration,
  async () => {
    const topic = `ctx-lost-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic, `${topic}.responses`]);
    let agent = startDemoAgent({ flavour: "archestra-v1" });
    const port = Number(new URL(agent.url).port);
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `name: talk\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: keyed, context: key } }]\n`,
      ]),
      archestraUrl: agent.url,
      archestraA2a: "1.0",
    });
    const replies = async (count: number) =>
      (await readRecords(kafka, [`${topic}.responses`], count)).map((r) => JSON.parse(r.value!.toString()));
    try {
      await produce(kafka, topic, [{ key: "alice", value: "{}" }]);
      const [first] = await replies(1);
      // The agent loses its conversations (Archestra deleted or expired them).
      await agent.close();
      agent = startDemoAgent({ flavour: "archestra-v1", port });
      await produce(kafka, topic, [{ key: "alice", value: "{}" }]);
      const second = (await replies(2))[1];
      const sent = agent.requests.filter((r) => r.op === "send").map((r) => r.message?.contextId);
      assert.deepEqual(sent, [first.reply.context_id, undefined], "the lost conversation, then a new one");
      assert.ok(second.reply.context_id && second.reply.context_id !== first.reply.context_id);
      await produce(kafka, topic, [{ key: "alice", value: "{}" }]);
      await replies(3);
      const third = agent.requests.filter((r) => r.op === "send").at(-1);
      assert.equal(third?.message?.contextId, second.reply.context_id, "the new conversation goes on");
      assert.equal(bridge.stats.deadLettered, 0);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "with answers: false, a task that stops for input or authorisation goes to the DLQ with its own class and task id",
  integration,
  async () => {
    const topic = `task-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent({
      flavour: "a2a-0.3",
      behaviours: {
        asks: { task: "working", workMs: 100, finalState: "input-required" },
        locked: { task: "working", workMs: 100, finalState: "auth-required" },
      },
    });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `name: tasks\nsource: { topics: [${topic}] }\nroutes:\n` +
        `  - { name: asks, match: { fields: { kind: asks } }, invoke: { prompt_id: asks, answers: false } }\n` +
        `  - { name: locked, invoke: { prompt_id: locked, answers: false } }\n`,
      ]),
      archestraUrl: agent.url,
    });
    try {
      await produce(kafka, topic, [
        { key: "a", value: JSON.stringify({ kind: "asks" }) },
        { key: "b", value: JSON.stringify({ kind: "other" }) },
      ]);
      const dead = await readRecords(kafka, [`${topic}.dlq`], 2);
      const byKey = Object.fromEntries(dead.map((r) => [r.key, r.headers]));
      assert.equal(byKey.a["x-error-class"], "input-required");
      assert.equal(byKey.b["x-error-class"], "auth-required");
      for (const headers of [byKey.a, byKey.b]) {
        assert.match(headers["x-task-id"], /^[0-9a-f-]{36}$/);
        assert.equal(headers["x-error-attempts"], "1", "not retried");
      }
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "a route with several agents calls each in parallel and publishes each reply; the offset waits for all",
  integration,
  async () => {
    const topic = `fan-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    const agent = startDemoAgent({
      behaviours: { slow: { gate }, broken: { rpcError: { code: -32000, message: "no" } } },
    });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `name: fan\nsource: { topics: [${topic}] }\n` +
        `routes: [{ name: all, transform: { template: "{q}" }, invoke: { prompt_id: [fast, slow, broken] } }]\n`,
      ]),
      archestraUrl: agent.url,
    });
    try {
      await produce(kafka, topic, [{ key: "k", value: JSON.stringify({ q: "what now?" }) }]);
      await within(agent.waitForRequests(3), "the three agents called at once");
      // Two of three outcomes are written; the slow agent still holds the message's offset.
      await readRecords(kafka, [`${topic}.responses`, `${topic}.dlq`], 2);
      const checks = bridge.stats.commitChecks;
      await until(() => bridge.stats.commitChecks >= checks + 2, "two commit cycles");
      assert.notEqual((await committedOffsets(kafka, bridge.groupId, topic))[0], "1", "not committed past it yet");
      release();
      const records = await readRecords(kafka, [`${topic}.responses`, `${topic}.dlq`], 3);
      const replies = records.filter((r) => r.topic.endsWith(".responses")).map((r) => JSON.parse(r.value!.toString()));
      assert.deepEqual(replies.map((e) => e.agent.prompt_id).sort(), ["fast", "slow"]);
      assert.ok(replies.every((e) => e.reply.text === demoReply(e.agent.prompt_id, "what now?")));
      assert.equal(new Set(replies.map((e) => e.request.message_id)).size, 2, "each call has its own message id");
      const [failed] = records.filter((r) => r.topic.endsWith(".dlq"));
      assert.equal(failed.headers["x-error-stage"], "invoke");
      await until(async () => (await committedOffsets(kafka, bridge.groupId, topic))[0] === "1", "the commit");
    } finally {
      release(); // a gated call would keep the agent from closing
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "agent_limits cap calls in flight and calls per interval over every pipeline that uses the agent",
  integration,
  async () => {
    const topic = `limits-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent({ behaviours: { shared: { latencyMs: 100 }, metered: {} } });
    const limits =
      `agent_limits:\n  - { prompt_id: shared, concurrency: 2 }\n  - { prompt_id: metered, rate: { calls: 4, per: 1s } }\n`;
    const pipeline = (name: string) =>
      `name: ${name}\nsource: { topics: [${topic}] }\ndelivery: { ordering: none, concurrency: 20 }\n` +
      `routes: [{ name: r, invoke: { prompt_id: [shared, metered] } }]\n${limits}`;
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([pipeline("one"), pipeline("two")]),
      archestraUrl: agent.url,
    });
    try {
      await produce(kafka, topic, Array.from({ length: 6 }, (_, n) => ({ key: `k${n}`, value: "{}" })));
      await readRecords(kafka, [`${topic}.responses`], 24, { timeoutMs: 60_000 });
      assert.equal(agent.peakInFlight("shared"), 2, "two calls at once, over both pipelines");
      const metered = agent.requests.filter((r) => r.promptId === "metered").map((r) => r.at).sort((a, b) => a - b);
      assert.equal(metered.length, 12);
      // 4 calls per second: the 5th call comes a second after the 1st at the earliest, the 9th two.
      assert.ok(metered[4] - metered[0] >= 950, `5th call ${metered[4] - metered[0]} ms after the 1st`);
      assert.ok(metered[8] - metered[0] >= 1950, `9th call ${metered[8] - metered[0]} ms after the 1st`);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "invoke.stream uses message/stream where the agent's card offers it, message/send elsewhere",
  integration,
  async () => {
    const topic = `stream-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent({ flavour: "a2a-0.3", behaviours: { streams: { stream: true }, plain: {} } });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `name: s\nsource: { topics: [${topic}] }\n` +
        `routes: [{ name: r, transform: { template: "{q}" }, invoke: { prompt_id: [streams, plain], stream: true } }]\n`,
      ]),
      archestraUrl: agent.url,
    });
    try {
      await produce(kafka, topic, [{ key: "k", value: JSON.stringify({ q: "stream this" }) }]);
      const replies = (await readRecords(kafka, [`${topic}.responses`], 2)).map((r) => JSON.parse(r.value!.toString()));
      const byAgent = Object.fromEntries(replies.map((e) => [e.agent.prompt_id, e]));
      assert.equal(byAgent.streams.reply.text, demoReply("streams", "stream this"));
      assert.match(byAgent.streams.reply.task_id, /^[0-9a-f-]{36}$/, "the streamed task");
      assert.equal(byAgent.plain.reply.text, demoReply("plain", "stream this"));
      const methods = Object.fromEntries(agent.requests.map((r) => [r.promptId, r.method]));
      assert.deepEqual(methods, { streams: "message/stream", plain: "message/send" });
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);
