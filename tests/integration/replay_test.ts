/**
 * `deno task replay` round-tripping real DLQ records: a broken agent dead-letters messages, the
 * replay command sends them back once the agent is fixed, and the bridge answers them.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { testBroker } from "../support/broker.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { createTopics, produce, readRecords, testKafka, topicSize, uniqueId } from "../support/kafka.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };
const root = fileURLToPath(new URL("../../", import.meta.url));

async function replay(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `--config=${root}deno.json`, `${root}scripts/replay.ts`, ...args],
    cwd: await Deno.makeTempDir(),
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
    },
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return stdout;
}

Deno.test(
  "replay sends dead-lettered records back to their topic, filtered, counted, and stops after --max-replays",
  integration,
  async () => {
    const topic = `replay-${uniqueId()}.events`;
    const dlq = `${topic}.dlq`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 2);
    const broken = { rpcError: { code: -32000, message: "model exploded" } };
    const agent = startDemoAgent({ behaviours: { p: broken } });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `name: shop\nsource: { topics: [${topic}] }\nroutes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]\n`,
      ]),
      archestraUrl: agent.url,
    });
    try {
      await produce(kafka, topic, [
        ...Array.from({ length: 5 }, (_, n) => ({ key: `k${n}`, value: JSON.stringify({ n }), headers: { h: "v" } })),
        { key: "bad", value: "{not json" },
      ]);
      await until(async () => await topicSize(kafka, dlq) === 6, "six DLQ records");

      // A dry run counts and publishes nothing.
      const dry = await replay(["--from", dlq, "--stage", "invoke", "--dry-run"]);
      assert.match(dry, /read 6 from .*; would replay 5 \(.*: 5\); left 1 filtered out, 0 at --max-replays 3/);
      assert.equal(await topicSize(kafka, topic), 6);

      // Replayed while the agent is still broken: they fail again and come back, counted once.
      const first = await replay(["--from", dlq, "--stage", "invoke"]);
      assert.match(first, /replayed 5 /);
      const since = /--since (\S+)/.exec(first)![1];
      await until(async () => await topicSize(kafka, dlq) === 11, "the replayed records failing again");

      // From the second failures on: with --max-replays 1 they stay, so a poison message cannot cycle.
      const held = await replay(["--from", dlq, "--since", since, "--max-replays", "1"]);
      assert.match(held, /read 11 .*replayed 0; left 6 filtered out, 5 at --max-replays 1/);

      // Fixed: the same records go through and are answered.
      agent.setBehaviour("p", undefined);
      assert.match(await replay(["--from", dlq, "--since", since]), /replayed 5 /);
      const replies = await readRecords(kafka, [`${topic}.responses`], 5);
      assert.deepEqual(replies.map((r) => r.key).sort(), ["k0", "k1", "k2", "k3", "k4"]);
      const sources = await readRecords(kafka, [topic], 16);
      const last = sources.filter((r) => r.headers["x-replay-count"] === "2");
      assert.equal(last.length, 5, "replayed records carry their replay count");
      for (const record of last) {
        assert.equal(record.headers.h, "v", "original headers are kept");
        assert.equal(record.headers["x-error-stage"], undefined, "DLQ headers are not");
        assert.equal(record.headers["x-source-offset"], undefined);
      }
      assert.equal(bridge.stats.replied, 5);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);
