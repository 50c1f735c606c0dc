/** Delivery on a real broker and agent: per-key order without head-of-line blocking, and agent outages. */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { createTopics, produce, readRecords, testKafka, topicSize, uniqueId } from "../support/kafka.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test("a slow call holds back only its own key; one key's replies keep their order", integration, async () => {
  const topic = `order-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic]);
  const gate = Promise.withResolvers<void>();
  const agent = startDemoAgent({ behaviours: { slow: { gate: gate.promise } } });
  const bridge = await startTestBridge({
    pipelines: pipelinesFrom([`
name: ordered
source: { topics: [${topic}] }
routes:
  - { name: slow, match: { fields: { slow: true } }, transform: { template: "{n}" }, invoke: { prompt_id: slow } }
  - { name: fast, transform: { template: "{n}" }, invoke: { prompt_id: fast } }
delivery: { ordering: key, concurrency: 8 }
`]),
    archestraUrl: agent.url,
  });
  try {
    await produce(kafka, topic, [
      { key: "A", value: '{"n":"A1","slow":true}' },
      { key: "A", value: '{"n":"A2"}' },
      { key: "B", value: '{"n":"B1"}' },
      { key: "A", value: '{"n":"A3"}' },
      { key: "B", value: '{"n":"B2"}' },
    ]);
    // B's messages are answered while A1 is still held; A2 and A3 wait behind A1.
    const early = await readRecords(kafka, [`${topic}.responses`], 2);
    assert.deepEqual(early.map((r) => r.key), ["B", "B"]);
    const requested = agent.requests.map((r) => r.message?.parts[0]).map((p) => p && "text" in p ? p.text : "");
    assert.deepEqual(requested.sort(), ["A1", "B1", "B2"], "A2 and A3 not sent while A1 is open");
    gate.resolve();
    const all = await readRecords(kafka, [`${topic}.responses`], 5);
    const texts = all.map((r) => JSON.parse(r.value!.toString()).request.text);
    assert.deepEqual(texts, ["B1", "B2", "A1", "A2", "A3"]);
  } finally {
    gate.resolve();
    await bridge.stop();
    await agent.close();
  }
});

Deno.test("an agent down for 20 seconds: no DLQ record, every reply arrives after recovery", integration, async () => {
  const topic = `outage-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic]);
  const first = startDemoAgent();
  const port = first.port;
  await first.close(); // the agent is down from the start
  const bridge = await startTestBridge({
    pipelines: pipelinesFrom([`
name: outage
source: { topics: [${topic}] }
routes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p, timeout: 2s } }]
delivery: { concurrency: 4, retries: { max: 2, backoff: 50ms } }
`]),
    archestraUrl: `http://127.0.0.1:${port}`,
    probeDelayMs: 250,
    maxProbeDelayMs: 2_000,
  });
  let agent: ReturnType<typeof startDemoAgent> | undefined;
  try {
    await produce(
      kafka,
      topic,
      Array.from({ length: 20 }, (_, n) => ({ key: `k${n % 5}`, value: JSON.stringify({ n }) })),
    );
    await until(() => bridge.stats.circuitOpenings === 1, "the circuit to open");
    // Without the circuit, 3 quick attempts each would have dead-lettered all 20 within a second.
    await new Promise((resolve) => setTimeout(resolve, 20_000)); // the outage itself, not a synchronisation
    assert.equal(bridge.stats.deadLettered, 0);
    assert.equal(bridge.stats.replied, 0);
    agent = startDemoAgent({ port });
    const replies = await readRecords(kafka, [`${topic}.responses`], 20);
    assert.deepEqual(
      replies.map((r) => JSON.parse(r.value!.toString()).request.text).sort(),
      Array.from({ length: 20 }, (_, n) => String(n)).sort(),
    );
  } finally {
    await bridge.stop();
    await agent?.close();
  }
  assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
  assert.equal(await topicSize(kafka, `${topic}.responses`), 20);
});
