/**
 * Failures on a real broker and a real A2A agent: what goes to the DLQ at once, what is retried,
 * what is skipped.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
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

Deno.test("bad JSON, a missing template field and a JSON-RPC error go to the DLQ at once", integration, async () => {
  const id = uniqueId();
  const topic = `dlq-${id}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic]);
  const agent = startDemoAgent({ behaviours: { broken: { rpcError: { code: -32000, message: "model exploded" } } } });
  const pipelines = pipelinesFrom([`
name: failing
source: { topics: [${topic}] }
routes:
  - name: to-broken
    match: { fields: { kind: rpc } }
    invoke: { prompt_id: broken }
  - name: templated
    transform: { template: "Customer {customer_id}: {message}" }
    invoke: { prompt_id: fine }
delivery: { retries: { max: 5, backoff: 10s } }
`]);
  const bridge = await startTestBridge({ pipelines, archestraUrl: agent.url });
  const started = Date.now();
  try {
    await produce(kafka, topic, [
      { key: "a", value: "{not json", headers: { origin: "test" } },
      { key: "b", value: '{"customer_id":"C-1"}' },
      { key: "c", value: '{"kind":"rpc"}' },
    ]);
    const records = await readRecords(kafka, [`${topic}.dlq`], 3);
    // A 10 s backoff with 5 retries would take minutes: none of these was retried.
    assert.ok(Date.now() - started < 30_000, "dead-lettered without retries");
    const byKey = Object.fromEntries(records.map((r) => [r.key, r]));

    assert.equal(byKey.a.value!.toString(), "{not json", "original bytes kept");
    assert.equal(byKey.a.headers.origin, "test", "original headers kept");
    assert.equal(byKey.a.headers["x-error-stage"], "decode");
    assert.equal(byKey.a.headers["x-error-class"], "permanent");
    assert.match(byKey.a.headers["x-error-message"], /not valid JSON/);
    assert.equal(byKey.a.headers["x-error-attempts"], "0");
    assert.equal(byKey.a.headers["x-source-topic"], topic);
    assert.equal(byKey.a.headers["x-source-offset"], "0");
    assert.equal(byKey.a.headers["x-pipeline"], "failing");
    assert.ok(!Number.isNaN(Date.parse(byKey.a.headers["x-failed-at"])));

    assert.equal(byKey.b.headers["x-error-stage"], "transform");
    assert.equal(byKey.b.headers["x-error-class"], "permanent");
    assert.match(byKey.b.headers["x-error-message"], /missing: message/);
    assert.equal(byKey.b.headers["x-route"], "templated");

    assert.equal(byKey.c.headers["x-error-stage"], "invoke");
    assert.equal(byKey.c.headers["x-error-class"], "permanent");
    assert.match(byKey.c.headers["x-error-message"], /JSON-RPC error -32000: model exploded/);
    assert.equal(byKey.c.headers["x-error-attempts"], "1");
    assert.equal(agent.requests.filter((r) => r.promptId === "broken").length, 1);
    assert.equal(agent.requests.filter((r) => r.promptId === "fine").length, 0);
  } finally {
    await bridge.stop();
    await agent.close();
  }
  assert.equal(await topicSize(kafka, `${topic}.responses`), 0);
  assert.deepEqual(await committedOffsets(kafka, bridge.groupId, topic), { 0: "3" });
});

Deno.test("an agent that answers 503 twice then succeeds yields one reply after retries", integration, async () => {
  const topic = `retry-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic]);
  const agent = startDemoAgent({ behaviours: { flaky: { failTimes: 2, failStatus: 503 } } });
  const pipelines = pipelinesFrom([`
name: flaky
source: { topics: [${topic}] }
routes: [{ name: flaky, invoke: { prompt_id: flaky } }]
delivery: { retries: { max: 3, backoff: 20ms } }
`]);
  const bridge = await startTestBridge({ pipelines, archestraUrl: agent.url });
  try {
    await produce(kafka, topic, [{ key: "k", value: '{"n":1}' }]);
    const [reply] = await readRecords(kafka, [`${topic}.responses`], 1);
    const envelope = JSON.parse(reply.value!.toString());
    assert.equal(envelope.attempts, 3);
    const calls = agent.requests.filter((r) => r.method === "message/send");
    assert.equal(calls.length, 3);
    assert.equal(new Set(calls.map((c) => c.message?.messageId)).size, 1, "retries reuse the message id");
  } finally {
    await bridge.stop();
    await agent.close();
  }
  assert.equal(await topicSize(kafka, `${topic}.responses`), 1);
  assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
});

Deno.test(
  "a message the agent keeps failing, while it answers others, is dead-lettered as exhausted",
  integration,
  async () => {
    const topic = `exhaust-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent({ behaviours: { poison: { failTimes: 1_000, failStatus: 502 } } });
    const pipelines = pipelinesFrom([`
name: poison
source: { topics: [${topic}] }
routes:
  - { name: poison, match: { fields: { poison: true } }, invoke: { prompt_id: poison } }
  - { name: fine, invoke: { prompt_id: fine } }
delivery: { ordering: none, retries: { max: 2, backoff: 2s } }
`]);
    const bridge = await startTestBridge({ pipelines, archestraUrl: agent.url });
    try {
      await produce(kafka, topic, [{ key: "bad", value: '{"poison":true}' }]);
      await agent.waitForRequests(1);
      // While the poison message waits for its retries, the agent answers another one.
      await produce(kafka, topic, [{ key: "good", value: '{"poison":false}' }]);
      const [record] = await readRecords(kafka, [`${topic}.dlq`], 1);
      assert.equal(record.key, "bad");
      assert.equal(record.headers["x-error-stage"], "invoke");
      assert.equal(record.headers["x-error-class"], "exhausted");
      assert.equal(record.headers["x-error-attempts"], "3");
      assert.match(record.headers["x-error-message"], /HTTP 502/);
      assert.equal(bridge.stats.circuitOpenings, 0);
    } finally {
      await bridge.stop();
      await agent.close();
    }
    assert.equal(await topicSize(kafka, `${topic}.responses`), 1);
  },
);

Deno.test("an unmatched message is skipped, counted and committed", integration, async () => {
  const topic = `skip-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic]);
  const agent = startDemoAgent();
  const pipelines = pipelinesFrom([`
name: picky
source: { topics: [${topic}] }
routes:
  - name: only-high
    match: { headers: { event_type: support_request }, fields: { priority: high } }
    invoke: { prompt_id: picky }
`]);
  const bridge = await startTestBridge({ pipelines, archestraUrl: agent.url });
  try {
    await produce(kafka, topic, [
      { key: "low", value: '{"priority":"low"}', headers: { event_type: "support_request" } },
      { key: "noheader", value: '{"priority":"high"}' },
      { key: "high", value: '{"priority":"high"}', headers: { event_type: "support_request" } },
    ]);
    const [reply] = await readRecords(kafka, [`${topic}.responses`], 1);
    assert.equal(reply.key, "high");
    await until(() => bridge.stats.replied === 1, "the reply recorded");
    assert.equal(bridge.stats.skipped, 2);
  } finally {
    await bridge.stop();
    await agent.close();
  }
  assert.equal(agent.requests.length, 1);
  assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
  assert.deepEqual(await committedOffsets(kafka, bridge.groupId, topic), { 0: "3" });
});
