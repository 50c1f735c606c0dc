/** Exactly-once delivery under load, on a real broker: what read_committed readers see. */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { createTopics, produce, readAll, testKafka, uniqueId } from "../support/kafka.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "exactly-once under load: 4,000 events of 1.5 kB against an instant agent, each reply seen once",
  integration,
  async () => {
    const topic = `eos-load-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent();
    const total = 4_000;
    const body = "x".repeat(1_500);
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([`
name: load
source: { topics: [${topic}] }
routes: [{ name: r, transform: { template: "{n} {body}" }, invoke: { prompt_id: p } }]
delivery: { guarantee: exactly-once, concurrency: 64 }
`]),
      archestraUrl: agent.url,
      // A second's worth of replies per transaction: past the broker's 1 MiB message.max.bytes at this rate.
      commitIntervalMs: 1_000,
    });
    try {
      const events = Array.from(
        { length: total },
        (_, n) => ({ key: `k${n % 97}`, value: JSON.stringify({ n, body }) }),
      );
      // In sends of 200: the producer's own request has the same 1 MiB limit.
      for (let from = 0; from < total; from += 200) await produce(kafka, topic, events.slice(from, from + 200));
      const stopped = bridge.done.then(() => Promise.reject(new Error("the bridge stopped by itself")));
      await Promise.race([until(() => bridge.stats.replied === total, "every reply", 180_000), stopped]);
      await bridge.stop();
      const replies = await readAll(kafka, `${topic}.responses`);
      const sources = new Set(replies.map((r) => r.headers["x-source-offset"]));
      assert.equal(sources.size, total, "every event has a reply for read_committed readers");
      assert.equal(replies.length, total, "and only one");
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "exactly-once: a reply too large for its topic goes to the DLQ, as with at-least-once; the next is answered",
  integration,
  async () => {
    const topic = `eos-large-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic: `${topic}.responses`, configEntries: [{ name: "max.message.bytes", value: "5000" }] }],
      waitForLeaders: true,
    });
    await admin.disconnect();
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([`
name: large
source: { topics: [${topic}] }
routes: [{ name: r, transform: { template: "{text}" }, invoke: { prompt_id: p } }]
delivery: { guarantee: exactly-once }
`]),
      archestraUrl: agent.url,
    });
    try {
      await produce(kafka, topic, [
        { key: "big", value: JSON.stringify({ text: "y".repeat(10_000) }) },
        { key: "small", value: JSON.stringify({ text: "hello" }) },
      ]);
      const stopped = bridge.done.then(() => Promise.reject(new Error("the bridge stopped by itself")));
      await Promise.race([
        until(() => bridge.stats.replied + bridge.stats.deadLettered === 2, "both outcomes"),
        stopped,
      ]);
      await bridge.stop();
      const [dead] = await readAll(kafka, `${topic}.dlq`);
      assert.equal(dead.key, "big");
      assert.equal(dead.headers["x-error-stage"], "publish");
      assert.match(dead.headers["x-error-message"], /more than .* takes/);
      const replies = await readAll(kafka, `${topic}.responses`);
      assert.deepEqual(replies.map((r) => r.key), ["small"]);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);
