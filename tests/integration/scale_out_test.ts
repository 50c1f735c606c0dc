/**
 * Scale-out as a platform team runs it: two bridge processes in one consumer group on a topic with
 * several partitions, exactly-once delivery, each process scraped over its own metrics port.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
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
      COMMIT_INTERVAL: "200ms",
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

Deno.test(
  "at-least-once: a second bridge joining mid-call moves only the partitions it takes; calls in the partitions kept are not made again",
  integration,
  async () => {
    const topic = `keep-${uniqueId()}.events`;
    const group = `keep-${uniqueId()}`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 4);
    const gate = Promise.withResolvers<void>();
    const agent = startDemoAgent({ behaviours: { held: { gate: gate.promise } } });
    const pipelines = pipelinesFrom([
      `name: keep\nsource: { topics: [${topic}] }\n` +
      `routes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: held, timeout: 60s } }]\n`,
    ]);
    const first = await startTestBridge({ pipelines, archestraUrl: agent.url, groupId: group });
    let second: Awaited<ReturnType<typeof startTestBridge>> | undefined;
    try {
      // One message per partition, each call held by the agent.
      await produce(kafka, topic, [0, 1, 2, 3].map((p) => ({ key: `k${p}`, value: `{"n":"p${p}"}`, partition: p })));
      await agent.waitForRequests(4);
      second = await startTestBridge({ pipelines, archestraUrl: agent.url, groupId: group });
      await until(() => first.readiness().kafka && second!.readiness().kafka, "both bridges in the group");
      // The second bridge calls again what it took over (the first's calls for those were cut).
      const moved = () => agent.requests.length - 4;
      await until(() => moved() >= 1, "the second bridge's calls");
      gate.resolve();
      const replies = await readRecords(kafka, [`${topic}.responses`], 4);
      assert.deepEqual(replies.map((r) => JSON.parse(r.value!.toString()).request.text).sort(), [
        "p0",
        "p1",
        "p2",
        "p3",
      ]);
      assert.ok(moved() <= 2, `only the partitions the second bridge took were called again (${moved()} calls again)`);
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
    } finally {
      gate.resolve();
      await second?.stop();
      await first.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "two bridges: a topic that appears while one has a call in flight makes the other's resubscription cut nothing",
  integration,
  async () => {
    const prefix = `grow2-${uniqueId()}`;
    const group = `grow2-${uniqueId()}`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [`${prefix}.a`]);
    const gate = Promise.withResolvers<void>();
    const agent = startDemoAgent({ behaviours: { held: { gate: gate.promise } } });
    const pipelines = pipelinesFrom([
      `name: grow\nsource: { topics: ["${prefix}.*"] }\n` +
      `routes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: held, timeout: 60s } }]\n`,
    ]);
    const bridges = [
      await startTestBridge({ pipelines, archestraUrl: agent.url, groupId: group }),
      await startTestBridge({ pipelines, archestraUrl: agent.url, groupId: group }),
    ];
    try {
      await until(() => bridges.every((b) => b.readiness().kafka), "both bridges in the group");
      // One partition: one bridge owns it, and its call is held; the other has nothing in flight.
      await produce(kafka, `${prefix}.a`, [{ key: "k", value: '{"n":"a"}' }]);
      await agent.waitForRequests(1);
      const owner = bridges.find((b) => b.stats.consumed === 1)!;
      const idle = bridges.find((b) => b !== owner)!;
      await createTopics(kafka, [`${prefix}.b`]);
      // The idle one subscribes again at once: the group rebalances under the owner's call.
      await idle.refreshTopics();
      const owners = owner.refreshTopics(); // waits for its call
      gate.resolve();
      await owners;
      await produce(kafka, `${prefix}.b`, [{ key: "k", value: '{"n":"b"}' }]);
      const replies = await readRecords(kafka, [`${prefix}.a.responses`, `${prefix}.b.responses`], 2);
      assert.deepEqual(replies.map((r) => JSON.parse(r.value!.toString()).request.text).sort(), ["a", "b"]);
      assert.deepEqual(agent.requests.map((r) => r.text).sort(), ["a", "b"], "each message called once");
    } finally {
      gate.resolve();
      for (const bridge of bridges) await bridge.stop();
      await agent.close();
    }
  },
);
