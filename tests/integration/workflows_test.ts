/**
 * Agent workflows on the real broker and the demo A2A agent: chaining pipelines on responses
 * topics (with a hop limit), one conversation per key, tasks that stop for input, reply shapes.
 */
import assert from "node:assert/strict";
import { demoReply, startDemoAgent } from "../../src/agent/demo_agent.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { createTopics, produce, readRecords, testKafka, uniqueId } from "../support/kafka.ts";

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

Deno.test("invoke.context: key gives one contextId per Kafka key; none gives none", integration, async () => {
  const topic = `ctx-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic]);
  const agent = startDemoAgent({});
  const bridge = await startTestBridge({
    pipelines: pipelinesFrom([
      `name: talk\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: keyed, context: key } }]\n`,
      `name: plain\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: plain } }]\n`,
    ]),
    archestraUrl: agent.url,
  });
  try {
    await produce(kafka, topic, [
      { key: "alice", value: "{}" },
      { key: "bob", value: "{}" },
      { key: "alice", value: "{}" },
    ]);
    await agent.waitForRequests(6);
    const keyed = agent.requests.filter((r) => r.promptId === "keyed");
    const contextOf = (key: string) =>
      keyed.filter((r) => r.message?.metadata?.key === key).map((r) => r.message?.contextId);
    const [alice1, alice2] = contextOf("alice");
    const [bob] = contextOf("bob");
    assert.ok(alice1, "a contextId is sent");
    assert.equal(alice1, alice2, "one key, one conversation");
    assert.notEqual(alice1, bob, "another key, another conversation");
    assert.ok(agent.requests.filter((r) => r.promptId === "plain").every((r) => r.message?.contextId === undefined));
  } finally {
    await bridge.stop();
    await agent.close();
  }
});

Deno.test(
  "a task that stops for input or authorisation goes to the DLQ with its own class and task id",
  integration,
  async () => {
    const topic = `task-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent({
      behaviours: {
        asks: { task: "working", polls: 1, finalState: "input-required" },
        locked: { task: "working", polls: 1, finalState: "auth-required" },
      },
    });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `name: tasks\nsource: { topics: [${topic}] }\nroutes:\n` +
        `  - { name: asks, match: { fields: { kind: asks } }, invoke: { prompt_id: asks } }\n` +
        `  - { name: locked, invoke: { prompt_id: locked } }\n`,
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
