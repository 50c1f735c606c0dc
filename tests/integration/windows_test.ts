/**
 * Windows on a real broker, against real agents: many events, one call, nothing lost. Each window's
 * request text is `{$key}|` and its events' `n`, one per line, so a reply says which events it holds.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { demoTrends } from "../../src/agent/demo_reply.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { a2aOf, AGENT_FLAVOURS } from "../support/flavours.ts";
import {
  committedOffsets,
  createTopics,
  produce,
  readAll,
  type ReadRecord,
  readRecords,
  testKafka,
  topicSize,
  uniqueId,
} from "../support/kafka.ts";
import { testBroker } from "../support/broker.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";
import { avroWriter, testRegistry } from "../support/registry.ts";
import { until, within } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

/** A pipeline whose route windows events of `topic`, each window's text naming its key and events. */
function windowsPipeline(topic: string, window: string, delivery = "{}"): string {
  return `
name: windows
source: { topics: [${topic}] }
routes:
  - name: w
    window: ${window}
    transform: { each: "{n}", template: "{$key}|{$events}" }
    invoke: { prompt_id: trends }
delivery: ${delivery}
`;
}

/** The envelope of a reply record. */
const envelopeOf = (record: ReadRecord) => JSON.parse(record.value!.toString());

/** The key and event numbers a window's request text names. */
function eventsOf(record: ReadRecord): { key: string; events: number[] } {
  const [key, ...lines] = envelopeOf(record).request.text.split(/[|\n]/);
  return { key, events: lines.map(Number) };
}

for (const { name, flavour, api } of AGENT_FLAVOURS) {
  Deno.test(
    `${name}: windows close at max_events, one reply each, keyed by the window key; interleaved keys never mix`,
    integration,
    async () => {
      const topic = `win-count-${uniqueId()}.events`;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic], 2);
      const agent = startDemoAgent({ flavour, behaviours: { trends: { trends: true } } });
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([windowsPipeline(topic, "{ by: key, size: 1h, max_events: 3 }")]),
        archestraUrl: agent.url,
        archestraA2a: a2aOf(api),
      });
      try {
        // Four keys, interleaved, six events each: two windows per key.
        const keys = ["cpu", "mem", "disk", "net"];
        await produce(kafka, topic, Array.from({ length: 24 }, (_, n) => ({ key: keys[n % 4], value: `{"n":${n}}` })));
        const replies = await readRecords(kafka, [`${topic}.responses`], 8);
        for (const reply of replies) {
          const { key, events } = eventsOf(reply);
          assert.equal(reply.key, key, "keyed by the window key");
          assert.equal(events.length, 3);
          assert.ok(events.every((n) => keys[n % 4] === key), `only ${key}'s events: ${events}`);
          const envelope = envelopeOf(reply);
          assert.equal(envelope.window.count, 3);
          assert.deepEqual(envelope.window.first, { partition: reply.partition, offset: envelope.source.offset });
          assert.equal(envelope.reply.text, demoTrends(envelope.request.text), "the agent answered on what it got");
        }
        const answered = replies.flatMap((reply) => eventsOf(reply).events).sort((a, b) => a - b);
        assert.deepEqual(answered, Array.from({ length: 24 }, (_, n) => n), "every event in one window");
        // Per key, the second window after the first: order holds across windows.
        for (const key of keys) {
          const ofKey = replies.filter((reply) => reply.key === key).map((reply) => eventsOf(reply).events[0]);
          assert.deepEqual(ofKey, [...ofKey].sort((a, b) => a - b), `${key}'s windows in order`);
        }
        await until(async () => {
          const committed = await committedOffsets(kafka, bridge.groupId, topic);
          return Object.values(committed).reduce((sum, o) => sum + Number(o), 0) === 24;
        }, "every event committed");
        assert.equal(agent.requests.length, 8, "one call per window");
      } finally {
        await bridge.stop();
        await agent.close();
      }
    },
  );
}

Deno.test("a window closes after its size when its key gets no more events", integration, async () => {
  const topic = `win-size-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic]);
  const agent = startDemoAgent();
  const bridge = await startTestBridge({
    pipelines: pipelinesFrom([windowsPipeline(topic, "{ size: 700ms, max_events: 100 }")]),
    archestraUrl: agent.url,
  });
  try {
    await produce(kafka, topic, [{ key: "a", value: '{"n":1}' }, { key: "b", value: '{"n":2}' }]);
    await produce(kafka, topic, [{ key: "a", value: '{"n":3}' }]);
    const replies = await readRecords(kafka, [`${topic}.responses`], 2);
    const byKey = Object.fromEntries(replies.map((reply) => [reply.key, eventsOf(reply).events]));
    assert.deepEqual(byKey, { a: [1, 3], b: [2] });
    for (const reply of replies) {
      const { start, end } = envelopeOf(reply).window;
      assert.ok(Date.parse(end) - Date.parse(start) >= 700, `open for its size: ${start} to ${end}`);
    }
  } finally {
    await bridge.stop();
    await agent.close();
  }
});

Deno.test(
  "windows waiting to fill never stall a full cap: 40 keys go through 10 in flight, their windows closed early",
  integration,
  async () => {
    const topic = `win-cap-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([windowsPipeline(topic, "{ size: 1h, max_events: 100 }")]),
      archestraUrl: agent.url,
      maxInFlight: 10,
    });
    try {
      await produce(kafka, topic, Array.from({ length: 40 }, (_, n) => ({ key: `k${n}`, value: `{"n":${n}}` })));
      // Each key's window would wait an hour; the cap is full at 10. Closed early, they make room
      // until the topic is read to its end, where fewer than half the cap may stay open.
      const answered = (records: ReadRecord[]) => new Set(records.flatMap((r) => eventsOf(r).events));
      const replies = await readRecords(kafka, [`${topic}.responses`], 0, {
        until: (records) => answered(records).size >= 35,
      });
      await until(() => bridge.stats.consumed === 40, "every event consumed");
      assert.ok(replies.every((reply) => eventsOf(reply).events.length === 1), "one key per window");
      assert.ok(bridge.stats.backpressurePauses > 0, "the cap was reached");
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "a failed window dead-letters every event, with its own bytes and offset and the window's error",
  integration,
  async () => {
    const topic = `win-dlq-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent({
      behaviours: { trends: { rpcError: { code: -32602, message: "Invalid params: too many readings" } } },
    });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([windowsPipeline(topic, "{ size: 1h, max_events: 3 }")]),
      archestraUrl: agent.url,
    });
    try {
      const values = ['{"n":1}', '{"n":2, "extra": true}', '{"n":3}'];
      await produce(kafka, topic, values.map((value) => ({ key: "cpu", value, headers: { "x-origin": "probe" } })));
      const dead = await readRecords(kafka, [`${topic}.dlq`], 3);
      assert.deepEqual(dead.map((r) => r.value!.toString()), values, "each event's original bytes");
      assert.deepEqual(dead.map((r) => r.headers["x-source-offset"]), ["0", "1", "2"]);
      for (const record of dead) {
        assert.equal(record.key, "cpu");
        assert.equal(record.headers["x-origin"], "probe");
        assert.equal(record.headers["x-error-stage"], "invoke");
        assert.match(record.headers["x-error-message"], /too many readings/);
        assert.equal(record.headers["x-window-events"], "0@0..2");
        assert.equal(record.headers["x-window-count"], "3");
      }
      await until(() => bridge.stats.deadLettered === 3, "three events counted as dead-lettered");
      await until(async () => (await committedOffsets(kafka, bridge.groupId, topic))[0] === "3", "all committed");
      assert.equal(agent.requests.length, 1, "one call for the window");
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "a stop leaves open windows uncommitted; the next run windows their events again",
  integration,
  async () => {
    const topic = `win-stop-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent();
    const groupId = `win-stop-${uniqueId()}`;
    const first = await startTestBridge({
      pipelines: pipelinesFrom([windowsPipeline(topic, "{ size: 1h, max_events: 10 }")]),
      archestraUrl: agent.url,
      groupId,
    });
    try {
      await produce(kafka, topic, [1, 2, 3].map((n) => ({ key: "a", value: `{"n":${n}}` })));
      await until(() => first.stats.consumed === 3, "three events in an open window");
      await first.stop();
      const committed = await committedOffsets(kafka, groupId, topic);
      assert.ok(Number(committed[0] ?? -1) <= 0, `nothing committed: ${JSON.stringify(committed)}`);
      assert.equal(agent.requests.length, 0);
      const second = await startTestBridge({
        pipelines: pipelinesFrom([windowsPipeline(topic, "{ size: 1h, max_events: 3 }")]),
        archestraUrl: agent.url,
        groupId,
      });
      try {
        const [reply] = await readRecords(kafka, [`${topic}.responses`], 1);
        assert.deepEqual(eventsOf(reply).events, [1, 2, 3]);
      } finally {
        await second.stop();
      }
    } finally {
      await first.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "a rebalance drops open windows and their events come again: each window forms anew, with no event twice",
  integration,
  async () => {
    const topic = `win-rebalance-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 2);
    const agent = startDemoAgent();
    const groupId = `win-rebalance-${uniqueId()}`;
    const options = {
      pipelines: pipelinesFrom([windowsPipeline(topic, "{ size: 1h, max_events: 3 }")]),
      archestraUrl: agent.url,
      groupId,
    };
    const first = await startTestBridge(options);
    let second: Awaited<ReturnType<typeof startTestBridge>> | undefined;
    const event = (key: string, n: number) => ({ key, value: `{"n":${n}}`, partition: key === "a" ? 0 : 1 });
    try {
      await produce(kafka, topic, [event("a", 1), event("a", 2), event("b", 4), event("b", 5)]);
      await until(() => first.stats.consumed === 4, "two open windows of two events each");
      second = await startTestBridge(options);
      await until(() => first.stats.rebalances >= 1 && second!.readiness().kafka, "the second bridge in the group");
      await produce(kafka, topic, [event("a", 3), event("b", 6)]);
      const replies = await readRecords(kafka, [`${topic}.responses`], 2);
      const windows = Object.fromEntries(replies.map((reply) => [reply.key, eventsOf(reply).events]));
      assert.deepEqual(windows, { a: [1, 2, 3], b: [4, 5, 6] });
      await first.stop();
      await second.stop();
      assert.equal(await topicSize(kafka, `${topic}.responses`), 2, "no other reply");
    } finally {
      await first.stop();
      await second?.stop();
      await agent.close();
    }
  },
);

/**
 * kill -9 three times while windows are open and calls under way, then a last run: every event is
 * in a reply. With exactly-once, in exactly one reply that read_committed readers see; with
 * at-least-once, events answered twice are only those of windows answered before a kill and not
 * yet committed.
 */
function killWithWindows(guarantee: "at-least-once" | "exactly-once") {
  return async () => {
    const topic = `win-kill-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 2);
    const agent = startDemoAgent({ latencyMs: 100 });
    const total = 300;
    const env = {
      PIPELINES_DIR: await pipelineDir(
        windowsPipeline(topic, "{ by: key, size: 1s, max_events: 4 }", `{ guarantee: ${guarantee}, concurrency: 8 }`),
      ),
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: `win-kill-${uniqueId()}`,
      KAFKA_TRANSACTIONAL_ID: `win-kill-${uniqueId()}`,
      ARCHESTRA_URL: agent.url,
      KAFKA_COMMIT_INTERVAL: "300ms",
      KAFKA_MAX_IN_FLIGHT: "40",
      KAFKA_SESSION_TIMEOUT: "6s", // a killed member's partitions move on soon
      LOG_LEVEL: "WARNING",
    };
    try {
      const keys = Array.from({ length: 9 }, (_, k) => `k${k}`);
      await produce(kafka, topic, Array.from({ length: total }, (_, n) => ({ key: keys[n % 9], value: `{"n":${n}}` })));
      for (let kill = 0; kill < 3; kill++) {
        const { child } = await startMain(env, { capture: false });
        const wanted = agent.requests.length + 15;
        await within(agent.waitForRequests(wanted), `${wanted} windows sent (run ${kill + 1})`);
        child.kill("SIGKILL");
        await child.status;
      }
      const last = await startMain(env, { capture: false });
      const answered = (records: ReadRecord[]) => new Set(records.flatMap((r) => eventsOf(r).events));
      await readRecords(kafka, [`${topic}.responses`], 0, {
        until: (records) => answered(records).size >= total,
        timeoutMs: 120_000,
      });
      last.child.kill("SIGTERM");
      assert.equal((await last.child.status).code, 0);
      const replies = await readAll(kafka, `${topic}.responses`);
      assert.equal(answered(replies).size, total, "every event is in a reply");
      for (const reply of replies) {
        const { key, events } = eventsOf(reply);
        assert.ok(events.every((n) => keys[n % 9] === key), "a window re-formed after a kill holds one key too");
      }
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "no DLQ records");
      const times = replies.flatMap((reply) => eventsOf(reply).events).length;
      if (guarantee === "exactly-once") {
        assert.equal(times, total, "each event in exactly one reply, for read_committed readers");
      } else {
        // Only events not yet committed at a kill come again: never more than KAFKA_MAX_IN_FLIGHT a kill.
        assert.ok(times - total <= 3 * 40, `${times - total} events answered twice`);
      }
    } finally {
      await agent.close();
    }
  };
}

Deno.test(
  "kill -9 with windows open, three times: every event answered, nothing lost",
  integration,
  killWithWindows("at-least-once"),
);

Deno.test(
  "exactly-once with windows: kill -9 three times, each event in exactly one committed reply",
  integration,
  killWithWindows("exactly-once"),
);

Deno.test(
  "open windows of a revoked partition are dropped at the revoke, not when their timer comes",
  integration,
  async () => {
    const topic = `win-revoke-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent({ behaviours: { trends: { trends: true } } });
    const pipelines = pipelinesFrom([windowsPipeline(topic, "{ by: key, size: 10m, max_events: 100 }")]);
    const groupId = `win-revoke-${uniqueId()}`;
    const first = await startTestBridge({ pipelines, archestraUrl: agent.url, groupId });
    let second: Awaited<ReturnType<typeof startTestBridge>> | undefined;
    try {
      await produce(kafka, topic, [0, 1, 2].map((n) => ({ key: "cpu", value: JSON.stringify({ n }) })));
      await until(() => first.stats.consumed === 3, "the events taken into a window");
      // A second member joins: the group rebalances, and every partition is revoked from the first.
      second = await startTestBridge({ pipelines, archestraUrl: agent.url, groupId });
      await until(() => first.stats.abandoned === 3, "the window's events abandoned at the revoke", 20_000);
      assert.equal(agent.requests.length, 0, "no call was made for the stale window");
    } finally {
      await second?.stop();
      await first.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "windows over Avro records written by the serde library: the template reads decoded fields, decimals and timestamps as text, one reply per window",
  integration,
  async () => {
    const url = await testRegistry();
    const topic = `win-avro-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const write = await avroWriter(url, topic, {
      type: "record",
      name: "Reading",
      namespace: "plant",
      fields: [
        { name: "sensor", type: "string" },
        { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 10, scale: 2 } },
        { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
      ],
    });
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([`
name: avro-windows
source: { topics: [${topic}], format: avro }
routes:
  - name: w
    window: { by: key, size: 1h, max_events: 3 }
    transform: { each: "{at} {amount}", template: "{$key} ({sensor}): {$count} readings\\n{$events}" }
    invoke: { prompt_id: trends }
`]),
      archestraUrl: agent.url,
      schemaRegistry: { url },
    });
    try {
      // Two keys, interleaved, three readings each: one window per key. Amounts are big-endian
      // two's complement at scale 2: 0x01e240 is 1234.56, 0xff38 is -2.00.
      const at = 1_700_000_000_123;
      const readings = [
        { key: "cpu", sensor: "cpu-1", amount: [0x01, 0xe2, 0x40], at },
        { key: "mem", sensor: "mem-1", amount: [0xff, 0x38], at: at + 1 },
        { key: "cpu", sensor: "cpu-2", amount: [0x05], at: at + 1_000 },
        { key: "mem", sensor: "mem-2", amount: [0x00], at: at + 1_001 },
        { key: "cpu", sensor: "cpu-3", amount: [0x7f], at: at + 60_000 },
        { key: "mem", sensor: "mem-3", amount: [0x27, 0x10], at: at + 60_001 },
      ];
      const values = await Promise.all(
        readings.map(({ sensor, amount, at }) => write({ sensor, amount: Buffer.from(amount), at })),
      );
      await produce(kafka, topic, readings.map(({ key }, n) => ({ key, value: values[n] })));
      // Until both replies are in, or a DLQ record (an event that did not decode) is.
      const read = await readRecords(kafka, [`${topic}.responses`, `${topic}.dlq`], 2, {
        until: (records) => records.length >= 2 || records.some((r) => r.topic === `${topic}.dlq`),
      });
      const dead = read.filter((r) => r.topic === `${topic}.dlq`).map((r) => r.headers["x-error-message"]);
      assert.deepEqual(dead, [], "nothing dead-lettered");
      const replies = read.filter((r) => r.topic === `${topic}.responses`);
      const byKey = Object.fromEntries(replies.map((reply) => [reply.key, envelopeOf(reply)]));
      assert.equal(
        byKey.cpu.request.text,
        [
          "cpu (cpu-1): 3 readings",
          "2023-11-14T22:13:20.123Z 1234.56",
          "2023-11-14T22:13:21.123Z 0.05",
          "2023-11-14T22:14:20.123Z 1.27",
        ].join("\n"),
      );
      assert.equal(
        byKey.mem.request.text,
        [
          "mem (mem-1): 3 readings",
          "2023-11-14T22:13:20.124Z -2.00",
          "2023-11-14T22:13:21.124Z 0.00",
          "2023-11-14T22:14:20.124Z 100.00",
        ].join("\n"),
      );
      assert.deepEqual([byKey.cpu.window.count, byKey.mem.window.count], [3, 3]);
      await until(
        async () => (await committedOffsets(kafka, bridge.groupId, topic))[0] === "6",
        "every event committed",
      );
      assert.equal(await topicSize(kafka, `${topic}.responses`), 2, "one reply per window");
      assert.equal(agent.requests.length, 2, "one call per window");
      assert.equal(bridge.stats.deadLettered, 0);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);
