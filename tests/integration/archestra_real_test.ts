/**
 * Against the real Archestra backend (../shared/archestra-real: its own server and database, a fake
 * LLM behind it), on `/v1` and `/v2`: the old bridge's three events, a provider rate limit, a kill -9
 * with redelivery, one of two agents whose provider fails every call, a burst whose provider
 * rate-limits each request once, a token it refuses, and an Avro record answered in Avro. Every answer, error and refusal on the wire
 * is Archestra's own. Skipped, with the reason in one line, where the fixture is not running.
 */
import { a2aOf } from "../support/flavours.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { exampleEvents } from "../../src/demo_events.ts";
import { archestraReal, failingAgent, fakeLlmCalls, withFailFirst } from "../support/archestra_real.ts";
import { onePromptPipeline, pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { testBroker } from "../support/broker.ts";
import { createTopics, keyedEvents, produce, readRecords, testKafka, topicSize, uniqueId } from "../support/kafka.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";
import { until } from "../support/until.ts";
import { Buffer } from "node:buffer";
import { AvroDeserializer } from "@confluentinc/schemaregistry/dist/serde/avro.js";
import { SerdeType } from "@confluentinc/schemaregistry/dist/serde/serde.js";
import { avroWriter, serdeClient, testRegistry } from "../support/registry.ts";

const archestra = await archestraReal();
if ("skip" in archestra) console.log(`real Archestra suite skipped: ${archestra.skip}`);
const integration = { sanitizeOps: false, sanitizeResources: false, ignore: "skip" in archestra };
const real = archestra as Exclude<typeof archestra, { skip: string }>;

const root = fileURLToPath(new URL("../../", import.meta.url));
/** What the fake LLM answers every call it does not fail. */
const FAKE_REPLY = "Hello from the fake LLM.";

const pipeline = (name: string, topic: string, promptId: string, extra = "") =>
  onePromptPipeline(name, topic, promptId, extra, "timeout: 60s");

const replyTexts = (records: { value: Uint8Array | null }[]) =>
  records.map((r) => JSON.parse(new TextDecoder().decode(r.value!)).reply.text);

for (const api of ["v1", "v2"] as const) {
  Deno.test(
    `real Archestra /${api}: the old bridge's three events are answered by their agents`,
    integration,
    async () => {
      const id = uniqueId();
      const { kafka } = await testKafka();
      // The shipped pipelines, on topics of this test's own.
      const rename = (topic: string) => topic.replace(/^(customer|orders|analytics)\./, `$1-${id}.`);
      const texts = await Promise.all(
        ["customer-support", "order-processing", "analytics"].map(async (name) => {
          const text = await Deno.readTextFile(`${root}pipelines/${name}.yaml`);
          return text.slice(0, text.indexOf("\nexamples:"))
            .replace("customer.events", rename("customer.events"))
            .replace('"orders.*"', `"orders-${id}.*"`)
            .replace("analytics.events", rename("analytics.events"));
        }),
      );
      const seed = exampleEvents(0).map((event) => ({ ...event, topic: rename(event.topic) }));
      await createTopics(kafka, seed.map((event) => event.topic));
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom(texts, {
          CUSTOMER_SUPPORT_PROMPT_ID: real.agents.customerSupport,
          ORDER_PROCESSING_PROMPT_ID: real.agents.orderProcessing,
          ANALYTICS_PROMPT_ID: real.agents.analytics,
        }),
        archestraUrl: real.url,
        archestraToken: real.token,
        archestraA2a: a2aOf(api),
      });
      try {
        for (const event of seed) {
          await produce(kafka, event.topic, [{ key: event.key, value: JSON.stringify(event.value) }]);
        }
        const replies = await readRecords(
          kafka,
          seed.map((event) => `${event.topic}.responses`),
          3,
        );
        assert.deepEqual(replies.map((r) => r.key).sort(), ["CUST-001", "ORD-123", "conversion_rate"]);
        assert.deepEqual(replyTexts(replies), [FAKE_REPLY, FAKE_REPLY, FAKE_REPLY]);
        const agents = replies.map((r) => JSON.parse(r.value!.toString()).agent.url).sort();
        assert.deepEqual(
          agents,
          [real.agents.customerSupport, real.agents.orderProcessing, real.agents.analytics]
            .map((agent) => `${real.url}/${api}/a2a/${agent}`).sort(),
        );
      } finally {
        await bridge.stop();
      }
      assert.equal(bridge.stats.deadLettered, 0);
    },
  );

  Deno.test(
    `real Archestra /${api}: a key's conversation goes on across a restart (/v2 mints it; /v1 keeps none)`,
    integration,
    async () => {
      const topic = `ctx-${uniqueId()}.events`;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic, `${topic}.responses`]);
      const pipelines = pipelinesFrom([
        onePromptPipeline("talk", topic, real.agents.customerSupport, "", "timeout: 60s, context: key"),
      ]);
      const groupId = `ctx-${uniqueId()}`;
      const start = () =>
        startTestBridge({
          pipelines,
          archestraUrl: real.url,
          archestraToken: real.token,
          archestraA2a: a2aOf(api),
          groupId,
        });
      const envelopes = async (count: number) =>
        (await readRecords(kafka, [`${topic}.responses`], count)).map((r) => JSON.parse(r.value!.toString()));
      let bridge = await start();
      await produce(kafka, topic, [{ key: "alice", value: JSON.stringify({ message: "first" }) }]);
      const [first] = await envelopes(1);
      await bridge.stop();
      bridge = await start();
      try {
        await produce(kafka, topic, [{ key: "alice", value: JSON.stringify({ message: "second" }) }]);
        const [, second] = await envelopes(2);
        assert.equal(second.reply.text, FAKE_REPLY);
        if (api === "v2") {
          assert.ok(first.reply.context_id, "Archestra minted a conversation");
          assert.equal(second.reply.context_id, first.reply.context_id, "the second message went on with it");
        }
      } finally {
        await bridge.stop();
      }
      assert.equal(bridge.stats.deadLettered, 0);
    },
  );

  Deno.test(`real Archestra /${api}: a provider rate limit of some seconds loses nothing`, integration, async () => {
    const topic = `ratelimit-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([pipeline("ratelimit", topic, real.agents.customerSupport)]),
      archestraUrl: real.url,
      archestraToken: real.token,
      archestraA2a: a2aOf(api),
    });
    await Deno.writeTextFile(real.failFile, "");
    try {
      await produce(kafka, topic, keyedEvents(3, `limit-${topic}-`));
      // Lifted once every event's first call has met it (Archestra tries its provider 9 times per call).
      const before = await fakeLlmCalls(real);
      await until(async () => await fakeLlmCalls(real) >= before + 3 * 9, "each event's first call refused", 60_000);
      await Deno.remove(real.failFile);
      const replies = await readRecords(kafka, [`${topic}.responses`], 3, { timeoutMs: 120_000 });
      assert.deepEqual(replyTexts(replies), [FAKE_REPLY, FAKE_REPLY, FAKE_REPLY]);
    } finally {
      await Deno.remove(real.failFile).catch(() => {});
      await bridge.stop();
    }
    assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
  });

  Deno.test(
    `real Archestra /${api}: kill -9 mid-stream, then a restart: every event answered, none dead-lettered`,
    integration,
    async () => {
      const topic = `kill-${uniqueId()}.events`;
      const total = 30;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic]);
      const env = {
        PIPELINES_DIR: await pipelineDir(pipeline("kill", topic, real.agents.customerSupport)),
        KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
        KAFKA_GROUP_ID: `kill-${uniqueId()}`,
        ARCHESTRA_URL: real.url,
        ARCHESTRA_TOKEN: real.token,
        ARCHESTRA_A2A_VERSION: a2aOf(api),
        KAFKA_COMMIT_INTERVAL: "2s",
        KAFKA_SESSION_TIMEOUT: "6s",
        LOG_LEVEL: "WARNING",
      };
      await produce(kafka, topic, keyedEvents(total));
      const first = await startMain(env, { capture: false });
      // Killed once about a third is answered: replies written but not committed, calls under way.
      await readRecords(kafka, [`${topic}.responses`], 10, { timeoutMs: 120_000 });
      first.child.kill("SIGKILL");
      await first.child.status;
      const second = await startMain(env, { capture: false });
      const offsets = (records: { headers: Record<string, string> }[]) =>
        new Set(records.map((r) => r.headers["x-source-offset"]));
      try {
        await readRecords(kafka, [`${topic}.responses`], total, {
          until: (records) => offsets(records).size >= total,
          timeoutMs: 120_000,
        });
      } finally {
        second.child.kill("SIGTERM");
        assert.equal((await second.child.status).code, 0);
      }
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
    },
  );

  Deno.test(
    `real Archestra /${api}: one agent whose provider fails every call; the other's events are answered`,
    integration,
    async () => {
      const id = uniqueId();
      const [healthy, failing] = [`healthy-${id}.events`, `failing-${id}.events`];
      const { kafka } = await testKafka();
      await createTopics(kafka, [healthy, failing]);
      const retries = "delivery: { retries: { max: 2, backoff: 50ms } }\n";
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([
          pipeline("healthy", healthy, real.agents.customerSupport, retries),
          pipeline("failing", failing, await failingAgent(real), retries),
        ]),
        archestraUrl: real.url,
        archestraToken: real.token,
        archestraA2a: a2aOf(api),
        probeDelayMs: 100,
        maxProbeDelayMs: 200,
      });
      try {
        await produce(kafka, failing, keyedEvents(10, "f"));
        await until(() => bridge.stats.circuitOpenings >= 1, "the failing agent's circuit to open", 60_000);
        await produce(kafka, healthy, keyedEvents(20, "h"));
        const replies = await readRecords(kafka, [`${healthy}.responses`], 20, { timeoutMs: 120_000 });
        assert.equal(new Set(replies.map((r) => r.key)).size, 20);
        const dead = await readRecords(kafka, [`${failing}.dlq`], 10, { timeoutMs: 120_000 });
        assert.equal(new Set(dead.map((r) => r.key)).size, 10);
        assert.ok(dead.every((r) => r.headers["x-error-class"] === "exhausted"), "exhausted: its card answers");
        assert.ok(dead.every((r) => /-32603/.test(r.headers["x-error-message"])), dead[0].headers["x-error-message"]);
      } finally {
        await bridge.stop();
      }
      assert.equal(await topicSize(kafka, `${healthy}.dlq`), 0);
    },
  );

  Deno.test(
    `real Archestra /${api}: a refused token dead-letters nothing; with the right one everything is answered`,
    integration,
    async () => {
      const topic = `token-${uniqueId()}.events`;
      const groupId = `token-${uniqueId()}`;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic]);
      const pipelines = pipelinesFrom([pipeline("token", topic, real.agents.customerSupport)]);
      await produce(kafka, topic, keyedEvents(5));
      const refused = await startTestBridge({
        pipelines,
        groupId,
        archestraUrl: real.url,
        archestraToken: "arch_revoked0000000000000000000000",
        archestraA2a: a2aOf(api),
        probeDelayMs: 100,
        maxProbeDelayMs: 200,
      });
      try {
        await until(() => refused.stats.refusals >= 1, "the refusal");
        assert.equal(refused.readiness().agents, false);
      } finally {
        await refused.stop();
      }
      assert.equal(refused.stats.deadLettered, 0, "refused, not dead-lettered");
      const accepted = await startTestBridge({
        pipelines,
        groupId,
        archestraUrl: real.url,
        archestraToken: real.token,
        archestraA2a: a2aOf(api),
      });
      try {
        const replies = await readRecords(kafka, [`${topic}.responses`], 5);
        assert.deepEqual(replyTexts(replies), Array(5).fill(FAKE_REPLY));
      } finally {
        await accepted.stop();
      }
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
    },
  );

  Deno.test(
    `real Archestra /${api}: a burst whose provider rate-limits each request once is answered`,
    integration,
    async () => {
      const topic = `burst-${uniqueId()}.events`;
      // Each first call takes ~11 s to fail (Archestra's own retries), and the adaptive limit slows
      // down for them, as it should for a provider's rate limit (from 4 calls at once to 1): a burst
      // of 5 meets both, in about half a minute. The demo agent's flavours take bursts of 200.
      const total = 5;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic]);
      await withFailFirst(9, async () => {
        const bridge = await startTestBridge({
          pipelines: pipelinesFrom([pipeline("burst", topic, real.agents.customerSupport)]),
          archestraUrl: real.url,
          archestraToken: real.token,
          archestraA2a: a2aOf(api),
        });
        try {
          await produce(kafka, topic, keyedEvents(total, `burst-${topic}-`));
          const replies = await readRecords(kafka, [`${topic}.responses`], total, { timeoutMs: 240_000 });
          assert.equal(new Set(replies.map((r) => r.key)).size, total);
          assert.equal(bridge.stats.circuitOpenings, 0, "each request's own rate limit is no outage");
        } finally {
          await bridge.stop();
        }
      });
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
    },
  );
}

Deno.test(
  "real Archestra /v1 and /v2: an Avro record (written by the serde library) is answered, and its reply written in Avro is read back by the library",
  integration,
  async () => {
    const url = await testRegistry();
    const { kafka } = await testKafka();
    const schema = {
      type: "record",
      name: "Ticket",
      fields: [
        { name: "id", type: "string" },
        { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 8, scale: 2 } },
      ],
    };
    const read = new AvroDeserializer(serdeClient(url), SerdeType.VALUE, {});
    for (const api of ["v1", "v2"] as const) {
      const topic = `real-avro-${api}-${uniqueId()}`;
      await createTopics(kafka, [topic]);
      const write = await avroWriter(url, topic, schema);
      await produce(kafka, topic, [{
        key: "T-1",
        value: await write({ id: "T-1", amount: Buffer.from([0x30, 0x39]) }),
      }]);
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([
          `name: avro-${api}\nsource: { topics: [${topic}], format: avro }\n` +
          `routes: [{ name: r, transform: { template: "ticket {id} for {amount}" }, invoke: { prompt_id: ${real.agents.customerSupport}, timeout: 60s } }]\n` +
          "publish: { format: avro }\n",
        ]),
        archestraUrl: real.url,
        archestraToken: real.token,
        archestraA2a: a2aOf(api),
        schemaRegistry: { url },
      });
      try {
        const [record] = await readRecords(kafka, [`${topic}.responses`], 1);
        // deno-lint-ignore no-explicit-any
        const reply = await read.deserialize(`${topic}.responses`, record.value!) as any;
        assert.equal(reply.request.text, "ticket T-1 for 123.45");
        assert.equal(reply.reply.text, FAKE_REPLY);
        assert.equal(reply.agent.url, `${real.url}/${api}/a2a/${real.agents.customerSupport}`);
        assert.equal(JSON.parse(reply.reply.parts)[0].text, FAKE_REPLY);
      } finally {
        await bridge.stop();
      }
    }
  },
);
