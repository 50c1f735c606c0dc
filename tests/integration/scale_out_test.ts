/**
 * Scale-out as a platform team runs it: two bridge processes in one consumer group on a topic with
 * several partitions, exactly-once delivery, each process scraped over its own metrics port.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { testBroker } from "../support/broker.ts";
import { createTopics, produce, readAll, readRecords, testKafka, topicSize, uniqueId } from "../support/kafka.ts";
import { type MainProcess, pipelineDir, startMain } from "../support/main_process.ts";
import { sample } from "../support/prometheus.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "two bridges in one group share the partitions; exactly-once: every message has exactly one reply",
  integration,
  async () => {
    const topic = `scale-${uniqueId()}.events`;
    const group = `scale-${uniqueId()}`;
    const total = 400;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 4);
    const agent = startDemoAgent({ latencyMs: 10 });
    const dir = await pipelineDir(
      `name: scale\nsource: { topics: [${topic}] }\nroutes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]\n` +
        `delivery: { guarantee: exactly-once, concurrency: 16 }\n`,
    );
    const brokers = await testBroker();
    // The same settings for both: transactional ids come from the group and each partition, not the process.
    const env = {
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: brokers,
      KAFKA_GROUP_ID: group,
      ARCHESTRA_URL: agent.url,
      KAFKA_COMMIT_INTERVAL: "200ms",
    };
    const members: MainProcess[] = [];
    try {
      for (let member = 0; member < 2; member++) members.push(await startMain(env));
      const ports = await Promise.all(
        members.map(async (m) =>
          (await m.waitForLog((r) => r.message.startsWith("metrics on"), "the metrics port")).properties.port
        ),
      );
      const scrape = async (port: unknown) => await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      // Both members in the group before any message: each owns partitions from the start.
      const admin = kafka.admin();
      await admin.connect();
      try {
        await until(
          async () => {
            const { groups } = await admin.describeGroups([group]);
            return groups[0]?.state === "Stable" && groups[0].members.length === 2;
          },
          "both bridges in the group",
          60_000,
        );
      } finally {
        await admin.disconnect();
      }

      await produce(
        kafka,
        topic,
        Array.from({ length: total }, (_, n) => ({ key: `k${n % 37}`, value: JSON.stringify({ n }) })),
      );
      // readRecords reads read_committed: only what the bridges' transactions committed.
      const replies = await readRecords(kafka, [`${topic}.responses`], total, { timeoutMs: 120_000 });
      const sources = replies.map((r) => `${r.headers["x-source-partition"]}@${r.headers["x-source-offset"]}`);
      assert.equal(new Set(sources).size, total, "every message has a reply");

      const consumed = await Promise.all(
        ports.map(async (port) =>
          sample(await scrape(port), "agentstream_messages_consumed_total", { pipeline: "scale" })
        ),
      );
      assert.ok(consumed.every((n) => (n ?? 0) > 0), `both bridges got work: ${consumed}`);
      assert.equal(consumed.reduce((sum, n) => sum! + n!, 0), total, "each message was consumed by one bridge once");
    } finally {
      for (const member of members) member.child.kill("SIGTERM");
      for (const member of members) assert.equal((await member.output).code, 0);
      await agent.close();
    }
    // After both stopped cleanly, nothing more was written: still exactly one reply per message.
    const all = await readAll(kafka, `${topic}.responses`);
    assert.equal(all.length, total, "no duplicate replies for read_committed readers");
    assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
  },
);
