/**
 * The whole pipeline on a real broker and a real A2A agent: the seed's three example events become
 * three replies on three responses topics.
 */
import assert from "node:assert/strict";
import { demoReply, startDemoAgent } from "../../src/agent/demo_agent.ts";
import { exampleEvents } from "../../src/demo_events.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { until } from "../support/until.ts";
import {
  committedOffsets,
  createTopics,
  produce,
  readRecords,
  testKafka,
  topicSize,
  uniqueId,
} from "../support/kafka.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

/** The shipped pipelines' shape, on topics of this test's own. */
function seedPipelines(prefix: string): string[] {
  return [
    `name: customer-support
source: { topics: [${prefix}customer.events] }
routes:
  - name: customer-support
    transform:
      template: "New customer support request:\\n\\nCustomer ID: {customer_id}\\nIssue: {message}"
    invoke: { prompt_id: support-prompt }
`,
    `name: order-processing
source: { topics: ["${prefix}orders.*"] }
routes:
  - name: order-processing
    transform: { template: "Order Event:\\nOrder ID: {order_id}\\nEvent: {event_type}" }
    invoke: { prompt_id: orders-prompt }
`,
    `name: analytics
source: { topics: [${prefix}analytics.events] }
routes:
  - name: analytics
    invoke: { prompt_id: analytics-prompt }
`,
  ];
}

Deno.test("the three example events become three replies on three responses topics", integration, async () => {
  const prefix = `e2e-${uniqueId()}.`;
  const { kafka } = await testKafka();
  const topics = ["customer.events", "orders.events", "analytics.events"].map((t) => prefix + t);
  await createTopics(kafka, topics);
  const agent = startDemoAgent();
  const bridge = await startTestBridge({ pipelines: pipelinesFrom(seedPipelines(prefix)), archestraUrl: agent.url });
  try {
    for (const event of exampleEvents(0)) {
      await produce(kafka, prefix + event.topic, [{
        key: event.key,
        value: JSON.stringify(event.value),
        headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
      }]);
    }
    const replies = await readRecords(kafka, topics.map((t) => `${t}.responses`), 3);
    const byTopic = Object.fromEntries(replies.map((r) => [r.topic, r]));

    const support = byTopic[`${prefix}customer.events.responses`];
    assert.equal(support.key, "CUST-001");
    const envelope = JSON.parse(support.value!.toString());
    const supportText =
      "New customer support request:\n\nCustomer ID: CUST-001\nIssue: Double charged for subscription";
    assert.equal(envelope.pipeline, "customer-support");
    assert.equal(envelope.route, "customer-support");
    assert.deepEqual(
      { topic: envelope.source.topic, partition: envelope.source.partition, offset: envelope.source.offset },
      { topic: `${prefix}customer.events`, partition: 0, offset: "0" },
    );
    assert.equal(envelope.source.key, "CUST-001");
    assert.match(envelope.source.timestamp, /^\d{4}-\d\d-\d\dT/);
    assert.equal(envelope.agent.url, `${agent.url}/v1/a2a/support-prompt`);
    assert.equal(envelope.agent.prompt_id, "support-prompt");
    assert.equal(envelope.request.text, supportText);
    assert.match(envelope.request.message_id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(envelope.reply.text, demoReply("support-prompt", supportText));
    assert.deepEqual(envelope.reply.parts, [{ kind: "text", text: envelope.reply.text }]);
    assert.equal(envelope.attempts, 1);
    assert.equal(typeof envelope.latency_ms, "number");
    assert.deepEqual(
      {
        topic: support.headers["x-source-topic"],
        partition: support.headers["x-source-partition"],
        offset: support.headers["x-source-offset"],
        pipeline: support.headers["x-pipeline"],
        correlation: support.headers["x-correlation-id"],
        traceparent: support.headers.traceparent,
      },
      {
        topic: `${prefix}customer.events`,
        partition: "0",
        offset: "0",
        pipeline: "customer-support",
        correlation: envelope.request.message_id,
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      },
    );

    const order = JSON.parse(byTopic[`${prefix}orders.events.responses`].value!.toString());
    assert.equal(order.request.text, "Order Event:\nOrder ID: ORD-123\nEvent: shipped");
    assert.equal(byTopic[`${prefix}orders.events.responses`].key, "ORD-123");
    const analytics = JSON.parse(byTopic[`${prefix}analytics.events.responses`].value!.toString());
    assert.deepEqual(JSON.parse(analytics.request.text), exampleEvents(0)[2].value);

    // The agent got a spec-complete A2A request.
    const call = agent.requests.find((r) => r.promptId === "support-prompt")!;
    assert.equal(call.method, "message/send");
    assert.equal(call.message?.role, "user");
    assert.equal(call.message?.kind, "message");
    assert.equal(call.message?.messageId, envelope.request.message_id);
    assert.deepEqual(call.message?.parts, [{ kind: "text", text: supportText }]);
    assert.deepEqual(call.message?.metadata, {
      topic: `${prefix}customer.events`,
      partition: 0,
      offset: "0",
      key: "CUST-001",
      pipeline: "customer-support",
      route: "customer-support",
      correlation_id: envelope.request.message_id,
    });
    await until(() => bridge.stats.replied === 3, "three replies recorded");
  } finally {
    await bridge.stop();
    await agent.close();
  }
  // Stopped cleanly: every source offset committed, and nothing else written.
  for (const topic of topics) {
    assert.deepEqual(await committedOffsets(kafka, bridge.groupId, topic), { 0: "1" });
    assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
  }
});

Deno.test(
  "a topic created after start that matches orders.* is picked up; outputs are never consumed as sources",
  integration,
  async () => {
    const prefix = `late-${uniqueId()}.`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [`${prefix}orders.events`]);
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([seedPipelines(prefix)[1]]),
      archestraUrl: agent.url,
      topicRefreshMs: 300,
    });
    try {
      // Each source, and beside it its answers topic (for agents that ask): nothing else.
      assert.deepEqual(bridge.topics(), [`${prefix}orders.events`, `${prefix}orders.events.answers`]);
      await produce(kafka, `${prefix}orders.events`, [{
        key: "ORD-1",
        value: '{"order_id":"ORD-1","event_type":"created"}',
      }]);
      await readRecords(kafka, [`${prefix}orders.events.responses`], 1);

      await createTopics(kafka, [`${prefix}orders.returns`]);
      await produce(kafka, `${prefix}orders.returns`, [{
        key: "ORD-2",
        value: '{"order_id":"ORD-2","event_type":"returned"}',
      }]);
      const [reply] = await readRecords(kafka, [`${prefix}orders.returns.responses`], 1);
      assert.equal(JSON.parse(reply.value!.toString()).request.text, "Order Event:\nOrder ID: ORD-2\nEvent: returned");

      await bridge.refreshTopics();
      assert.deepEqual(bridge.topics(), [
        `${prefix}orders.events`,
        `${prefix}orders.events.answers`,
        `${prefix}orders.returns`,
        `${prefix}orders.returns.answers`,
      ]);
      // Two source messages, two calls: the responses topics that orders.* could match were not fed back.
      assert.equal(agent.requests.length, 2);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test("a ** glob never consumes the responses, DLQ or answers topics as sources", integration, async () => {
  const prefix = `loop-${uniqueId()}`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [`${prefix}.a`]);
  const agent = startDemoAgent();
  const bridge = await startTestBridge({
    pipelines: pipelinesFrom([`
name: everything
source: { topics: ["${prefix}.**"] }
routes: [{ name: all, invoke: { prompt_id: all } }]
`]),
    archestraUrl: agent.url,
  });
  try {
    await produce(kafka, `${prefix}.a`, [{ key: "k", value: "{}" }, { key: "bad", value: "{" }]);
    await readRecords(kafka, [`${prefix}.a.responses`, `${prefix}.a.dlq`], 2);
    await bridge.refreshTopics();
    // The answers topic is consumed for answers only: no .answers.answers, no .responses, no .dlq.
    assert.deepEqual(bridge.topics(), [`${prefix}.a`, `${prefix}.a.answers`]);
    assert.equal(agent.requests.length, 1);
  } finally {
    await bridge.stop();
    await agent.close();
  }
});

Deno.test(
  "a topic that appears while calls are in flight: none is made twice, neither the calls in flight nor those finished behind a waiting message",
  integration,
  async () => {
    const prefix = `grow-${uniqueId()}`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [`${prefix}.a`]);
    // Calls longer than the 10 s the consumer used to wait for work in flight before subscribing again.
    const agent = startDemoAgent({ behaviours: { slow: { latencyMs: 11_000 } } });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([`
name: grow
source: { topics: ["${prefix}.*"] }
routes:
  - { name: slow, match: { fields: { slow: true } }, transform: { template: "{n}" }, invoke: { prompt_id: slow, timeout: 30s } }
  - { name: fast, transform: { template: "{n}" }, invoke: { prompt_id: fast } }
delivery: { ordering: key }
`]),
      archestraUrl: agent.url,
    });
    try {
      // a1 is slow; a2 waits behind it on its key; a3, another key, is answered at once: it is
      // finished behind a2, which holds the partition's commit point.
      await produce(kafka, `${prefix}.a`, [
        { key: "k1", value: '{"n":"a1","slow":true}' },
        { key: "k1", value: '{"n":"a2"}' },
        { key: "k2", value: '{"n":"a3"}' },
      ]);
      await readRecords(kafka, [`${prefix}.a.responses`], 1);
      await agent.waitForRequests(2);
      await createTopics(kafka, [`${prefix}.b`]);
      await bridge.refreshTopics();
      assert.ok(bridge.topics().includes(`${prefix}.b`));
      await produce(kafka, `${prefix}.b`, [{ key: "k3", value: '{"n":"b1"}' }]);
      const replies = await readRecords(kafka, [`${prefix}.a.responses`, `${prefix}.b.responses`], 4);
      assert.deepEqual(replies.map((r) => JSON.parse(r.value!.toString()).request.text).sort(), [
        "a1",
        "a2",
        "a3",
        "b1",
      ]);
      assert.deepEqual(agent.requests.map((r) => r.text).sort(), ["a1", "a2", "a3", "b1"], "each message called once");
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);
