/**
 * Inputs real producers send, and agents in trouble, on a real broker: none stops the bridge, each
 * message gets an outcome, the next message is answered, and one agent's trouble stays its own.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { consoleProduce } from "../support/console_producer.ts";
import { createTopics, produce, readRecords, testKafka, topicSize, uniqueId } from "../support/kafka.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

const requestTexts = (records: { value: Uint8Array | null }[]) =>
  records.map((r) => JSON.parse(new TextDecoder().decode(r.value!)).request.text as string);

Deno.test(
  "a Java producer's null header value and a value 6,000 levels deep: answered, and so is the next",
  integration,
  async () => {
    const topic = `inputs-${uniqueId()}.events`;
    const { kafka, brokers } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([`
name: inputs
source: { topics: [${topic}] }
routes: [{ name: r, invoke: { prompt_id: p, context: key } }]
`]),
      archestraUrl: agent.url,
    });
    try {
      // kafkajs cannot write a header without a value; Kafka's own console producer can.
      await consoleProduce(brokers[0], topic, [
        { key: "java-1", value: '{"n":1}', headers: [["trace", null], ["kind", "order"]] },
      ]);
      const deep = "[".repeat(6_000) + "]".repeat(6_000); // 12 kB
      await produce(kafka, topic, [{ key: "deep", value: deep }, { key: "next", value: '{"n":3}' }]);
      const replies = await readRecords(kafka, [`${topic}.responses`], 3);
      assert.deepEqual(replies.map((r) => r.key), ["java-1", "deep", "next"]);
      const texts = requestTexts(replies);
      assert.match(texts[0], /"n": 1/);
      assert.equal(texts[1], deep, "rendered whole, as compact JSON");
      assert.equal(bridge.stats.deadLettered, 0);
      assert.equal(bridge.readiness().ready, true, "alive");
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "a DLQ record over its topic's size limit goes out with its value cut; the next message is answered",
  integration,
  async () => {
    const topic = `large-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    await createTopics(kafka, [`${topic}.dlq`], 1, { "max.message.bytes": "20000" });
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([`
name: large
source: { topics: [${topic}] }
routes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]
`]),
      archestraUrl: agent.url,
    });
    try {
      const notJson = "x".repeat(100_000); // fits the source topic, not the DLQ
      await produce(kafka, topic, [{ key: "big", value: notJson }, { key: "next", value: '{"n":"after"}' }]);
      const [dead] = await readRecords(kafka, [`${topic}.dlq`], 1);
      assert.equal(dead.headers["x-value-truncated"], "100000");
      assert.equal(dead.headers["x-error-stage"], "decode");
      assert.ok(dead.value!.length < 20_000 && notJson.startsWith(dead.value!.toString()), "a prefix of the value");
      const [reply] = await readRecords(kafka, [`${topic}.responses`], 1);
      assert.deepEqual(requestTexts([reply]), ["after"]);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "an agent that is down pauses only the topics whose pipelines call it; the others keep flowing",
  integration,
  async () => {
    const id = uniqueId();
    const [down, up] = [`down-${id}.events`, `up-${id}.events`];
    const { kafka } = await testKafka();
    await createTopics(kafka, [down, up]);
    const agent = startDemoAgent();
    const gone = startDemoAgent();
    const deadUrl = `${gone.url}/v1/a2a/gone`;
    await gone.close();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `
name: calls-a-dead-agent
source: { topics: [${down}] }
routes: [{ name: r, transform: { template: "{n}" }, invoke: { url: "${deadUrl}", timeout: 2s } }]
delivery: { retries: { max: 1, backoff: 50ms } }
`,
        `
name: calls-a-live-agent
source: { topics: [${up}] }
routes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]
`,
      ]),
      archestraUrl: agent.url,
      probeDelayMs: 200,
      maxProbeDelayMs: 1_000,
    });
    try {
      await produce(kafka, down, Array.from({ length: 6 }, (_, n) => ({ key: `d${n}`, value: JSON.stringify({ n }) })));
      await until(() => bridge.stats.circuitOpenings === 1, "the dead agent's circuit to open");
      assert.equal(bridge.readiness().agents, false);
      // Produced after the circuit opened: with every topic paused, none of these would be consumed.
      await produce(kafka, up, Array.from({ length: 5 }, (_, n) => ({ key: `u${n}`, value: JSON.stringify({ n }) })));
      const replies = await readRecords(kafka, [`${up}.responses`], 5);
      assert.deepEqual(requestTexts(replies).sort(), ["0", "1", "2", "3", "4"]);
      assert.equal(bridge.stats.deadLettered, 0, "the outage dead-letters nothing");
    } finally {
      await bridge.stop();
      await agent.close();
    }
    assert.equal(await topicSize(kafka, `${down}.dlq`), 0);
  },
);

Deno.test(
  "a message the agent keeps failing while its card answers ends 'exhausted' within its retries",
  integration,
  async () => {
    const topic = `poison-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    // Every call with prompt "poison" gets -32603; the agent itself (its card, other prompts) is fine.
    const agent = startDemoAgent({ behaviours: { poison: { rpcFailTimes: 1_000 } } });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([`
name: poison
source: { topics: [${topic}] }
routes:
  - { name: bad, match: { fields: { poison: true } }, transform: { template: "{n}" }, invoke: { prompt_id: poison } }
  - { name: good, transform: { template: "{n}" }, invoke: { prompt_id: fine } }
delivery: { retries: { max: 2, backoff: 50ms } }
`]),
      archestraUrl: agent.url,
      probeDelayMs: 200,
    });
    try {
      // Alone on the agent: nobody else's success tells the bridge the agent is up, only its card does.
      await produce(kafka, topic, [{ key: "p", value: '{"n":"poison","poison":true}' }]);
      const [dead] = await readRecords(kafka, [`${topic}.dlq`], 1);
      assert.equal(dead.headers["x-error-class"], "exhausted");
      assert.equal(dead.headers["x-error-attempts"], "3", "its retry budget, not one more");
      assert.equal(bridge.stats.circuitOpenings, 0);
      await produce(kafka, topic, [{ key: "n", value: '{"n":"next"}' }]);
      const [reply] = await readRecords(kafka, [`${topic}.responses`], 1);
      assert.deepEqual(requestTexts([reply]), ["next"]);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);
