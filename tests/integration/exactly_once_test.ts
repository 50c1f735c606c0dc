/** Exactly-once delivery under load, on a real broker: what read_committed readers see. */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import {
  committedOffsets,
  createTopics,
  produce,
  readAll,
  readRecords,
  testKafka,
  uniqueId,
} from "../support/kafka.ts";
import { until, within } from "../support/until.ts";
import { sample } from "../support/prometheus.ts";
import { testBroker } from "../support/broker.ts";
import { type MainProcess, pipelineDir, startMain } from "../support/main_process.ts";
import { avroWriter, testRegistry } from "../support/registry.ts";

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
    await createTopics(kafka, [`${topic}.responses`], 1, { "max.message.bytes": "5000" });
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

/** Two or more bridge processes of one exactly-once group, and what read_committed readers see at the end. */
async function eosGroup(total: number) {
  const topic = `eos-group-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic], 4);
  await createTopics(kafka, [`${topic}.responses`, `${topic}.dlq`], 4);
  // Slow enough that a member always holds replies not yet committed.
  const agent = startDemoAgent({ latencyMs: 150 });
  const env = {
    PIPELINES_DIR: await pipelineDir(
      `name: group\nsource: { topics: [${topic}] }\n` +
        `routes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]\n` +
        `delivery: { guarantee: exactly-once, concurrency: 16 }\n`,
    ),
    KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
    KAFKA_GROUP_ID: `eos-group-${uniqueId()}`,
    ARCHESTRA_URL: agent.url,
    KAFKA_COMMIT_INTERVAL: "2s",
    KAFKA_SESSION_TIMEOUT: "6s",
    LOG_LEVEL: Deno.env.get("EOS_TEST_LOG_LEVEL") ?? "WARNING",
  };
  /** Produces the events 40 at a time, every 200 ms, so that work goes on while members come and go. */
  const produceAll = async () => {
    for (let from = 0; from < total; from += 40) {
      const events = Array.from({ length: Math.min(40, total - from) }, (_, i) => from + i);
      await produce(kafka, topic, events.map((n) => ({ key: `k${n}`, value: JSON.stringify({ n }) })));
      await new Promise((resolve) => setTimeout(resolve, 200)); // a steady rate, not a synchronisation
    }
  };
  const source = (r: { headers: Record<string, string> }) =>
    `${r.headers["x-source-partition"]}@${r.headers["x-source-offset"]}`;
  /** Waits until every event has a reply for read_committed readers; then checks there is only one each. */
  const exactlyOnce = async () => {
    await readRecords(kafka, [`${topic}.responses`], total, {
      until: (records) => new Set(records.map(source)).size >= total,
      timeoutMs: 120_000,
    });
    const replies = await readAll(kafka, `${topic}.responses`);
    assert.equal(new Set(replies.map(source)).size, total, "every event has a reply");
    const seen = new Map<string, number>();
    for (const reply of replies) seen.set(source(reply), (seen.get(source(reply)) ?? 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1).map(([at]) => at);
    assert.equal(replies.length, total, `and only one, for read_committed readers (twice: ${twice.slice(0, 20)})`);
  };
  return { env, agent, produceAll, exactlyOnce };
}

/**
 * Stops a member and keeps its output where EOS_TEST_LOG_LEVEL asks for it (to debug these tests).
 * One that has not exited a minute after the signal is killed (a hung stop fails, not hangs, the test).
 */
async function stopMember(member: MainProcess, signal: Deno.Signal = "SIGTERM"): Promise<number> {
  const kill = (signal: Deno.Signal) => {
    try {
      member.child.kill(signal);
    } catch {
      // exited already
    }
  };
  kill(signal);
  const hung = setTimeout(() => kill("SIGKILL"), 60_000);
  const { code, stdout, stderr } = await member.output.finally(() => clearTimeout(hung));
  if (Deno.env.get("EOS_TEST_LOG_LEVEL")) {
    Deno.writeTextFileSync(`/tmp/eos-member-${member.child.pid}.log`, stdout + stderr);
  }
  // A stop that was not clean says why in the test's output: its last lines (warnings and errors at least).
  if (code !== 0 && signal === "SIGTERM") {
    console.error(
      `member ${member.child.pid} exited ${code}; its last output:\n` +
        (stdout + stderr).trimEnd().split("\n").slice(-30).join("\n"),
    );
  }
  return code;
}

Deno.test(
  "exactly-once: a member frozen past its session timeout, then thawed, is fenced: each reply once",
  integration,
  async () => {
    const { env, agent, produceAll, exactlyOnce } = await eosGroup(800);
    const frozen = await startMain(env);
    const other = await startMain(env);
    try {
      const producing = produceAll();
      await within(agent.waitForRequests(120), "both members at work");
      Deno.kill(frozen.child.pid, "SIGSTOP");
      // The group gives up on it after its session timeout; the other member takes its partitions
      // and handles again what it had not committed.
      await producing;
      await exactlyOnce();
      Deno.kill(frozen.child.pid, "SIGCONT");
      // Thawed, it learns it was dropped from the group, but first finishes its calls and tries to
      // commit them, for partitions that are not its own any more: its transactions must fail.
      await frozen.waitForLog((r) => /not aware of this member/.test(r.message), "the thawed member to rejoin");
      // Stopped, both commit what they have left: nothing the zombie did may show.
      assert.equal(await stopMember(frozen), 0);
      assert.equal(await stopMember(other), 0);
      await exactlyOnce();
    } finally {
      try {
        Deno.kill(frozen.child.pid, "SIGCONT");
      } catch {
        // exited already
      }
      await Promise.all([stopMember(frozen), stopMember(other)]);
      await agent.close();
    }
  },
);

Deno.test(
  "exactly-once: a rolling restart, one member after the other, while events flow: each reply once",
  integration,
  async () => {
    const { env, agent, produceAll, exactlyOnce } = await eosGroup(1_200);
    const members = [await startMain(env), await startMain(env)];
    try {
      const producing = produceAll();
      for (let i = 0; i < members.length; i++) {
        await within(agent.waitForRequests(agent.requests.length + 60), `work before restarting member ${i}`);
        assert.equal(await stopMember(members[i]), 0, "a clean stop");
        members[i] = await startMain(env);
      }
      await producing;
      await exactlyOnce();
    } finally {
      await Promise.all(members.map((member) => stopMember(member)));
      await agent.close();
    }
  },
);

Deno.test(
  "a claim also fences the transactional id earlier versions used (hyphenated names): a rolling upgrade stays exactly once",
  integration,
  async () => {
    const topic = `eos-legacy-${uniqueId()}.events`;
    const groupId = `eos-legacy-${uniqueId()}`; // hyphens: today's id differs from the earlier version's
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic, `${topic}.responses`, `${topic}.dlq`]);
    // A replica of the earlier version holds partition 0's old id, with a transaction open.
    const old = kafka.producer({ transactionalId: `${groupId}-${topic}-0`, idempotent: true, maxInFlightRequests: 1 });
    await old.connect();
    const transaction = await old.transaction();
    await transaction.send({
      topic: `${topic}.responses`,
      messages: [{ key: "old", value: "from the earlier version" }],
    });
    const agent = startDemoAgent({});
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `name: eos\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: p } }]\n` +
        `delivery: { guarantee: exactly-once }\n`,
      ]),
      archestraUrl: agent.url,
      groupId,
    });
    try {
      await produce(kafka, topic, [{ key: "k", value: "{}" }]);
      // Read committed: the new owner's reply is there, so its claim ended the old open transaction.
      const replies = await readRecords(kafka, [`${topic}.responses`], 1);
      assert.deepEqual(replies.map((r) => r.key), ["k"], "the old transaction's record was never committed");
      await assert.rejects(transaction.commit(), "the earlier version's producer is fenced");
    } finally {
      await bridge.stop();
      await old.disconnect().catch(() => {});
      await agent.close();
    }
  },
);

Deno.test(
  "exactly-once: one stuck key holds its partition's replies under KAFKA_MAX_UNCOMMITTED_BYTES (that partition pauses, the other flows), then all are answered once",
  integration,
  async () => {
    const topic = `eos-stuck-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 2);
    const gate = Promise.withResolvers<void>();
    const agent = startDemoAgent({ behaviours: { stuck: { gate: gate.promise } } });
    const budget = 32 * 1024;
    const maxInFlight = 40;
    const body = "x".repeat(500);
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([`
name: stuck
source: { topics: [${topic}] }
routes:
  - { name: stuck, match: { fields: { stuck: true } }, transform: { template: "{n}" }, invoke: { prompt_id: stuck } }
  - { name: flows, transform: { template: "{p} {n} {body}" }, invoke: { prompt_id: flows } }
delivery: { guarantee: exactly-once, ordering: key, concurrency: 16 }
`]),
      archestraUrl: agent.url,
      maxInFlight,
      maxUncommittedBytes: budget,
    });
    const scrape = async (name: string, labels: Record<string, string> = {}) =>
      sample(await bridge.metrics.registry.metrics(), name, labels);
    const sent = (p: number) => agent.requests.filter((r) => r.text.startsWith(`p${p} `)).length;
    try {
      const events = (p: number) =>
        Array.from({ length: 400 }, (_, n) => ({
          key: `k${n % 50}`,
          value: JSON.stringify({ p: `p${p}`, n, body }),
          partition: p,
        }));
      await produce(kafka, topic, [{ key: "stuck", value: '{"n":"stuck","stuck":true}', partition: 0 }]);
      await agent.waitForRequests(1);
      await produce(kafka, topic, [...events(0), ...events(1)]);
      // Partition 1 flows to the end while partition 0's commit point is stuck; what partition 0 took
      // in finishes, so only the stuck message is unfinished.
      await until(
        async () => sent(1) === 400 && await scrape("agentstream_messages_in_flight") === 1,
        "partition 1 done, only the stuck message in flight",
        60_000,
      );
      assert.ok(sent(0) < 400, `partition 0 paused: ${sent(0)} of its 400 events sent`);
      const held = (await scrape("agentstream_uncommitted_bytes"))!;
      // Within the budget, give or take what was taken in before it filled (at most the in-flight cap).
      assert.ok(held <= budget + maxInFlight * 1_500, `${held} bytes held, the budget is ${budget}`);
      assert.equal(await scrape("agentstream_partition_held", { topic, partition: "0" }), 1);
      // Partition 1 may have paused for a moment (its own share full before a commit), never for long.
      assert.notEqual(await scrape("agentstream_partition_held", { topic, partition: "1" }), 1);
      gate.resolve();
      await until(() => bridge.stats.replied === 801, "every reply", 60_000);
      await until(
        async () => await scrape("agentstream_partition_held", { topic, partition: "0" }) === 0,
        "partition 0 resumed",
      );
      await bridge.stop();
      const replies = await readAll(kafka, `${topic}.responses`);
      const sources = new Set(replies.map((r) => `${r.headers["x-source-partition"]}/${r.headers["x-source-offset"]}`));
      assert.equal(sources.size, 801, "every event has a reply for read_committed readers");
      assert.equal(replies.length, 801, "and only one");
      assert.ok(bridge.stats.uncommittedPauses >= 1);
    } finally {
      gate.resolve();
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "exactly-once with Avro records written by the serde library: a restart redelivers what a stuck record held back, and read_committed readers see each reply once, its offset committed with it",
  integration,
  async () => {
    const url = await testRegistry();
    const topic = `eos-avro-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const write = await avroWriter(url, topic, {
      type: "record",
      name: "Job",
      namespace: "eos",
      fields: [{ name: "n", type: "int" }, { name: "stuck", type: "boolean" }],
    });
    const total = 10;
    const stuckAt = 3;
    const gate = Promise.withResolvers<void>();
    const agent = startDemoAgent({ behaviours: { stuck: { gate: gate.promise } } });
    const groupId = `eos-avro-${uniqueId()}`;
    const start = () =>
      startTestBridge({
        pipelines: pipelinesFrom([`
name: eos-avro
source: { topics: [${topic}], format: avro }
routes:
  - { name: stuck, match: { fields: { stuck: true } }, transform: { template: "{n}" }, invoke: { prompt_id: stuck } }
  - { name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }
delivery: { guarantee: exactly-once }
`]),
        archestraUrl: agent.url,
        groupId,
        schemaRegistry: { url },
        shutdownGraceMs: 200, // the stuck call is cut at the stop: its record is abandoned
      });
    const committed = async () => (await committedOffsets(kafka, groupId, topic))[0];
    const offsetsOf = (records: { headers: Record<string, string> }[]) =>
      records.map((r) => Number(r.headers["x-source-offset"])).sort((a, b) => a - b);
    let bridge = await start();
    try {
      const values = await Promise.all(Array.from({ length: total }, (_, n) => write({ n, stuck: n === stuckAt })));
      await produce(kafka, topic, values.map((value, n) => ({ key: `k${n}`, value })));
      // A record that does not decode is dead-lettered, not called: that ends the wait too.
      await until(() => agent.requests.length >= total || bridge.stats.deadLettered > 0, "a call for every record");
      assert.equal(bridge.stats.deadLettered, 0, "nothing dead-lettered");
      // The replies after the stuck record wait for its offset: only those before it commit.
      await until(async () => await committed() === String(stuckAt), "the offsets before the stuck record committed");
      await bridge.stop();
      assert.equal(await committed(), String(stuckAt), "nothing past the abandoned record committed");
      const before = await readAll(kafka, `${topic}.responses`);
      assert.deepEqual(offsetsOf(before), [0, 1, 2], "only the committed replies are visible");
      gate.resolve();
      bridge = await start();
      await readRecords(kafka, [`${topic}.responses`], total, {
        until: (records) => new Set(offsetsOf(records)).size >= total,
      });
      await bridge.stop();
      const replies = await readAll(kafka, `${topic}.responses`);
      assert.deepEqual(offsetsOf(replies), Array.from({ length: total }, (_, n) => n), "each record answered once");
      const texts = replies.map((r) => JSON.parse(r.value!.toString()).request.text);
      assert.deepEqual(texts.map(Number).sort((a, b) => a - b), offsetsOf(replies), "from its decoded value");
      assert.equal(await committed(), String(total));
      assert.equal(
        agent.requests.length,
        total + (total - stuckAt),
        "the records from the stuck one on were delivered again and called again",
      );
      assert.equal(bridge.stats.deadLettered, 0);
    } finally {
      gate.resolve();
      await bridge.stop();
      await agent.close();
    }
  },
);
