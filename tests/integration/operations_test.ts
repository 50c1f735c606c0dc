/**
 * Operating the bridge as a platform team would: scraping its metrics port over HTTP during a run,
 * probing it, and checking that its secrets appear nowhere it wrote.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { testBroker } from "../support/broker.ts";
import { createTopics, produce, readRecords, testKafka, uniqueId } from "../support/kafka.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";
import { sample } from "../support/prometheus.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

async function get(url: string): Promise<{ status: number; text: string }> {
  const response = await fetch(url);
  return { status: response.status, text: await response.text() };
}

Deno.test(
  "metrics and probes answer over HTTP during a run, and the agent token is in nothing the run wrote",
  integration,
  async () => {
    const token = `tok-${crypto.randomUUID()}`;
    const topic = `ops-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 2);
    // A careless agent: it refuses one prompt and echoes the caller's Authorization header in the error.
    const agent = startDemoAgent({
      token,
      behaviours: { careless: { failTimes: 1_000_000, failStatus: 400, echoAuthorization: true } },
    });
    const dir = await pipelineDir(
      `name: ops\nsource: { topics: [${topic}] }\nroutes:\n` +
        `  - { name: careless, match: { fields: { kind: leak } }, invoke: { prompt_id: careless } }\n` +
        `  - { name: main, transform: { template: "{n}" }, invoke: { prompt_id: p } }\n`,
    );
    const bridge = await startMain({
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: `ops-${uniqueId()}`,
      ARCHESTRA_URL: agent.url,
      ARCHESTRA_TOKEN: token,
      LOG_LEVEL: "DEBUG",
      KAFKA_COMMIT_INTERVAL: "200ms",
    });
    let scraped = "";
    try {
      const listening = await bridge.waitForLog((r) => r.message.startsWith("metrics on"), "the metrics port");
      const base = `http://127.0.0.1:${listening.properties.port}`;
      assert.equal((await get(`${base}/healthz`)).status, 200);
      await until(async () => (await get(`${base}/readyz`)).status === 200, "readiness", 60_000);
      assert.deepEqual(JSON.parse((await get(`${base}/readyz`)).text), {
        ready: true,
        kafka: true,
        agents: true,
        outputs: true,
        topics: 2, // the source, and its answers topic
      });

      const good = 20;
      await produce(kafka, topic, [
        ...Array.from({ length: good }, (_, n) => ({ key: `k${n % 5}`, value: JSON.stringify({ n }) })),
        ...Array.from({ length: 3 }, (_, n) => ({ key: `leak${n}`, value: JSON.stringify({ kind: "leak" }) })),
        { key: "bad", value: "{not json" },
      ]);
      const ops = { pipeline: "ops" };
      const main = { pipeline: "ops", route: "main" };
      // Finished, and committed: lag is measured against committed offsets.
      await until(
        async () => {
          scraped = (await get(`${base}/metrics`)).text;
          return sample(scraped, "agentstream_messages_replied_total", main) === good &&
            sample(scraped, "agentstream_consumer_lag", { topic, partition: "0" }) === 0 &&
            sample(scraped, "agentstream_consumer_lag", { topic, partition: "1" }) === 0;
        },
        "every message finished and committed, in the metrics",
        60_000,
      );
      assert.equal(sample(scraped, "agentstream_messages_consumed_total", ops), good + 4);
      assert.equal(sample(scraped, "agentstream_messages_matched_total", main), good);
      assert.equal(sample(scraped, "agentstream_messages_invoked_total", main), good);
      assert.equal(
        sample(scraped, "agentstream_messages_dead_lettered_total", {
          ...ops,
          route: "careless",
          stage: "invoke",
          class: "permanent",
        }),
        3,
      );
      assert.equal(
        sample(scraped, "agentstream_messages_dead_lettered_total", { ...ops, route: "", stage: "decode" }),
        1,
      );
      assert.equal(sample(scraped, "agentstream_agent_latency_seconds_count", main), good);
      assert.equal(sample(scraped, "agentstream_messages_in_flight"), 0);
      assert.equal((await get(`${base}/nothing`)).status, 404);
    } finally {
      bridge.child.kill("SIGTERM");
    }
    const { code, stdout, stderr } = await bridge.output;
    await agent.close();
    assert.equal(code, 0, stderr);

    // Everything the run wrote: logs, metrics, reply and DLQ records with their headers.
    const records = await readRecords(kafka, [`${topic}.responses`, `${topic}.dlq`], 24);
    const written = records.map((r) =>
      `${r.value ? new TextDecoder().decode(r.value) : ""} ${JSON.stringify(r.headers)}`
    );
    const everything = [stdout, stderr, scraped, ...written].join("\n");
    assert.ok(agent.requests.every((r) => r.authorization === `Bearer ${token}`), "the token was sent");
    assert.match(stdout, /"level":"DEBUG"/, "debug logging was on");
    const echoed = records.filter((r) => r.headers["x-error-message"]?.includes("[redacted]"));
    assert.equal(echoed.length, 3, "the agent did echo the token, and it was blanked out");
    assert.equal(everything.includes(token), false, "the token appears in what the run wrote");
  },
);

Deno.test(
  "a SIGTERM while the bridge is still starting stops it cleanly (exit 0), as a pod being replaced expects",
  integration,
  async () => {
    const topic = `ops-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent();
    const bridge = await startMain({
      PIPELINES_DIR: await pipelineDir(
        `name: early\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: p } }]\n`,
      ),
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: `ops-${uniqueId()}`,
      ARCHESTRA_URL: agent.url,
      LOG_LEVEL: "INFO",
    });
    try {
      // Its first line, before the metrics port, the agents' cards and Kafka: far from started.
      await bridge.waitForLog((r) => r.message.startsWith("agentstream:"), "the pipelines line");
      bridge.child.kill("SIGTERM");
      const { code } = await bridge.output;
      assert.equal(code, 0, "a clean stop, not death by signal (143)");
    } finally {
      await agent.close();
    }
  },
);
