/**
 * Faults with the bridge as a separate process (src/main.ts, configured by environment), a real
 * broker and a real agent: it is killed with SIGKILL mid-stream, again and again.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { loadSettings } from "../../src/config/settings.ts";
import { ensureLocalBroker, stopLocalBroker, throwawayBroker } from "../../src/infra/local_broker.ts";
import { createKafka } from "../../src/kafka/client.ts";
import { a2aOf } from "../support/flavours.ts";
import { testBroker } from "../support/broker.ts";
import {
  committedOffsets,
  createTopics,
  produce,
  readAll,
  readRecords,
  testKafka,
  topicSize,
  uniqueId,
} from "../support/kafka.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";
import { until, within } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

/** The bridge as a subprocess, its output left to stderr. */
async function spawnBridge(env: Record<string, string>): Promise<Deno.ChildProcess> {
  return (await startMain({ LOG_LEVEL: "WARNING", ...env }, { capture: false })).child;
}

// Archestra's /v1 runs a message id it has seen again; its /v2 refuses one it has answered, so every
// message redelivered after a kill is sent again under a new id (and none is dead-lettered).
for (const api of ["v1", "v2"] as const) {
  Deno.test(
    `kill -9 of the bridge mid-stream, three times (Archestra /${api}): every message answered, few duplicates, no DLQ`,
    integration,
    async () => {
      const topic = `kill-${uniqueId()}.events`;
      const total = 300;
      const cap = 40;
      const { kafka } = await testKafka();
      await createTopics(kafka, [topic], 3);
      const agent = startDemoAgent({ latencyMs: 20 });
      const dir = await pipelineDir(
        `name: kill\nsource: { topics: [${topic}] }\nroutes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]\ndelivery: { concurrency: 16 }\n`,
      );
      const env = {
        PIPELINES_DIR: dir,
        KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
        KAFKA_GROUP_ID: `kill-${uniqueId()}`,
        ARCHESTRA_URL: agent.url,
        ARCHESTRA_A2A_VERSION: a2aOf(api),
        KAFKA_MAX_IN_FLIGHT: String(cap),
        KAFKA_COMMIT_INTERVAL: "200ms",
        // The killed member's partitions move once the group gives up on it (6 s: the broker's minimum).
        KAFKA_SESSION_TIMEOUT: "6s",
      };
      try {
        await produce(
          kafka,
          topic,
          Array.from({ length: total }, (_, n) => ({ key: `k${n % 37}`, value: JSON.stringify({ n }) })),
        );
        for (let kill = 0; kill < 3; kill++) {
          const child = await spawnBridge(env);
          // Kill it while it is busy: once it has sent 30 more calls than before.
          const wanted = agent.requests.length + 30;
          await within(agent.waitForRequests(wanted), `${wanted} agent calls (restart ${kill + 1})`);
          child.kill("SIGKILL");
          await child.status;
        }
        const last = await spawnBridge(env);
        const seen = (records: { headers: Record<string, string> }[]) =>
          new Set(records.map((r) => `${r.headers["x-source-partition"]}@${r.headers["x-source-offset"]}`));
        const replies = await readRecords(kafka, [`${topic}.responses`], total, {
          until: (records) => seen(records).size >= total,
          timeoutMs: 120_000,
        });
        last.kill("SIGTERM");
        assert.equal((await last.status).code, 0);

        assert.equal(seen(replies).size, total, "every source offset has a reply");
        const answered = new Set(replies.map((r) => JSON.parse(r.value!.toString()).request.text));
        assert.equal(answered.size, total);
        const duplicates = replies.length - total;
        assert.ok(duplicates <= 3 * cap, `${duplicates} duplicates, at most the in-flight cap per kill`);
        assert.ok(agent.requests.length >= total);
      } finally {
        await agent.close();
      }
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
    },
  );
}

/**
 * Kill -9 three times under exactly-once delivery; each source message must end with exactly one
 * reply per agent of its route for read_committed readers.
 */
function killExactlyOnce(prompts: string[], total: number, api: "v1" | "v2" = "v1") {
  return async () => {
    const topic = `eos-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 3);
    await createTopics(kafka, [`${topic}.responses`, `${topic}.dlq`], 3);
    // With several agents, one is much slower: a kill finds messages with one part's reply done
    // and the other's still running, after commits have gone by.
    const agent = startDemoAgent({ latencyMs: 20, behaviours: { slow: { latencyMs: 1_500 } } });
    const dir = await pipelineDir(
      `name: eos\nsource: { topics: [${topic}] }\n` +
        `routes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: [${prompts}] } }]\n` +
        `delivery: { guarantee: exactly-once, concurrency: 16 }\n`,
    );
    const env = {
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: `eos-${uniqueId()}`,
      KAFKA_TRANSACTIONAL_ID: `eos-${uniqueId()}`, // the same across restarts: a restart fences its zombie
      ARCHESTRA_URL: agent.url,
      ARCHESTRA_A2A_VERSION: a2aOf(api),
      KAFKA_MAX_IN_FLIGHT: "40",
      KAFKA_COMMIT_INTERVAL: "300ms",
      KAFKA_SESSION_TIMEOUT: "6s",
    };
    const outcomes = total * prompts.length;
    try {
      await produce(
        kafka,
        topic,
        Array.from({ length: total }, (_, n) => ({ key: `k${n % 37}`, value: JSON.stringify({ n }) })),
      );
      for (let kill = 0; kill < 3; kill++) {
        const child = await spawnBridge(env);
        if (prompts.length === 1) {
          const wanted = agent.requests.length + 30;
          await within(agent.waitForRequests(wanted), `${wanted} agent calls (restart ${kill + 1})`);
        } else {
          // Killed once slow calls are under way and a transaction has committed since they started.
          const slowCalls = () => agent.requests.filter((r) => r.promptId === "slow").length;
          const committed = async () =>
            Object.values(await committedOffsets(kafka, env.KAFKA_GROUP_ID, topic)).reduce(
              (sum, o) => sum + Number(o),
              0,
            );
          const before = slowCalls();
          await until(() => slowCalls() >= before + 8, `slow calls (restart ${kill + 1})`, 60_000);
          const point = await committed();
          await until(async () => await committed() > point, `a commit (restart ${kill + 1})`, 60_000);
        }
        child.kill("SIGKILL");
        await child.status;
      }
      const last = await spawnBridge(env);
      const source = (r: { headers: Record<string, string>; value: Uint8Array | null }) =>
        `${r.headers["x-source-partition"]}@${r.headers["x-source-offset"]}/${
          JSON.parse(new TextDecoder().decode(r.value!)).agent.prompt_id
        }`;
      await readRecords(kafka, [`${topic}.responses`], outcomes, {
        until: (records) => new Set(records.map(source)).size >= outcomes,
        timeoutMs: 120_000,
      });
      last.kill("SIGTERM");
      assert.equal((await last.status).code, 0);
      // Everything the bridge wrote is settled now.
      const replies = await readAll(kafka, `${topic}.responses`);
      assert.equal(new Set(replies.map(source)).size, outcomes, "every source offset has a reply per agent");
      assert.equal(replies.length, outcomes, "and only one: aborted transactions are invisible to read_committed");
    } finally {
      await agent.close();
    }
    assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered");
  };
}

Deno.test(
  "exactly-once: kill -9 three times, read_committed readers see each message's reply exactly once",
  integration,
  killExactlyOnce(["p"], 200),
);

Deno.test(
  "exactly-once on Archestra /v2 (which refuses a message id it has answered): kill -9 three times, one reply each",
  integration,
  killExactlyOnce(["p"], 200, "v2"),
);

Deno.test(
  "exactly-once with a route fanned out to two agents: kill -9 three times, one reply per agent per message",
  integration,
  killExactlyOnce(["p", "slow"], 100),
);

Deno.test(
  "a second bridge joins and the first dies under load: both get work, nothing is lost",
  integration,
  async () => {
    const topic = `group-${uniqueId()}.events`;
    const total = 400;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 4);
    const agent = startDemoAgent({ latencyMs: 20 });
    const dir = await pipelineDir(
      `name: group\nsource: { topics: [${topic}] }\nroutes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]\ndelivery: { concurrency: 8 }\n`,
    );
    const env = {
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: `group-${uniqueId()}`,
      ARCHESTRA_URL: agent.url,
      KAFKA_MAX_IN_FLIGHT: "40",
      KAFKA_COMMIT_INTERVAL: "200ms",
      KAFKA_SESSION_TIMEOUT: "6s",
    };
    try {
      await produce(
        kafka,
        topic,
        Array.from({ length: total }, (_, n) => ({ key: `k${n % 41}`, value: JSON.stringify({ n }) })),
      );
      const first = await spawnBridge(env);
      await within(agent.waitForRequests(60), "the first bridge at work");
      const second = await spawnBridge(env);
      const joinedAt = agent.requests.length;
      await within(agent.waitForRequests(joinedAt + 120), "work after the second bridge joined");
      // The first one leaves the hard way: its unfinished messages must reach the second.
      first.kill("SIGKILL");
      await first.status;
      const source = (r: { headers: Record<string, string> }) =>
        `${r.headers["x-source-partition"]}@${r.headers["x-source-offset"]}`;
      const replies = await readRecords(kafka, [`${topic}.responses`], total, {
        until: (records) => new Set(records.map(source)).size >= total,
        timeoutMs: 120_000,
      });
      second.kill("SIGTERM");
      assert.equal((await second.status).code, 0);
      assert.equal(new Set(replies.map(source)).size, total, "every source offset has a reply");
      // Both processes answered: replies come from both of the agent's callers.
      const partitionsAfterJoin = new Set(
        agent.requests.slice(joinedAt).map((r) => (r.message?.metadata as { partition: number }).partition),
      );
      assert.ok(partitionsAfterJoin.size >= 2, "work on several partitions after the join");
    } finally {
      await agent.close();
    }
  },
);

Deno.test(
  "the broker restarts under load: the bridge recovers by itself; a crash right after loses nothing",
  integration,
  async () => {
    // A broker of this test's own, so that stopping it disturbs no other test.
    const broker = await throwawayBroker((line) => console.error(`kafka (restart test): ${line}`));
    const kafka = createKafka(loadSettings({ KAFKA_CLIENT_ID: "restart-test" }), [broker.bootstrap]);
    const topic = `bounce-${uniqueId()}.events`;
    const total = 300;
    await createTopics(kafka, [topic], 3);
    const agent = startDemoAgent({ latencyMs: 20 });
    const dir = await pipelineDir(
      `name: bounce\nsource: { topics: [${topic}] }\nroutes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]\ndelivery: { concurrency: 8 }\n`,
    );
    const env = {
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: broker.bootstrap,
      KAFKA_GROUP_ID: `bounce-${uniqueId()}`,
      ARCHESTRA_URL: agent.url,
      KAFKA_MAX_IN_FLIGHT: "40",
      KAFKA_COMMIT_INTERVAL: "200ms",
      KAFKA_SESSION_TIMEOUT: "6s",
    };
    const bridge = await spawnBridge(env);
    let exited = false;
    bridge.status.then(() => exited = true);
    let second: Deno.ChildProcess | undefined;
    try {
      await produce(
        kafka,
        topic,
        Array.from({ length: total }, (_, n) => ({ key: `k${n % 23}`, value: JSON.stringify({ n }) })),
      );
      await within(agent.waitForRequests(50), "the bridge at work");
      await stopLocalBroker(broker.stateDir!);
      await ensureLocalBroker({ stateDir: broker.stateDir, port: 0, tethered: true });
      // It carries on by itself once the broker is back: messages produced only now reach the agent.
      // (Waiting for more calls on the first batch would race: it may be done before the broker stops.)
      await produce(
        kafka,
        topic,
        Array.from({ length: total }, (_, i) => ({ key: `k${i % 23}`, value: JSON.stringify({ n: total + i }) })),
      );
      const n = (r: (typeof agent.requests)[number]) => {
        const part = r.message?.parts[0];
        return part?.kind === "text" ? Number(part.text) : -1;
      };
      await until(
        () => {
          // A bridge that gave up would only show as a timeout two minutes later.
          assert.equal(exited, false, "the bridge rode out the broker restart");
          return agent.requests.filter((r) => n(r) >= total).length >= 60;
        },
        "work after the broker came back",
        120_000,
      );
      // ...and a crash right then loses nothing either.
      bridge.kill("SIGKILL");
      await bridge.status;
      second = await spawnBridge(env);
      const source = (r: { headers: Record<string, string> }) =>
        `${r.headers["x-source-partition"]}@${r.headers["x-source-offset"]}`;
      const replies = await readRecords(kafka, [`${topic}.responses`], 2 * total, {
        until: (records) => new Set(records.map(source)).size >= 2 * total,
        timeoutMs: 120_000,
      });
      assert.equal(new Set(replies.map(source)).size, 2 * total, "every source offset has a reply");
      second.kill("SIGTERM");
      assert.equal((await second.status).code, 0);
    } finally {
      for (const child of [bridge, second]) {
        try {
          child?.kill("SIGKILL");
        } catch { /* already stopped */ }
      }
      await agent.close();
      await broker.stop();
    }
  },
);

Deno.test(
  "the agent fails every call for 20 s and the bridge is killed meanwhile: no DLQ record, every reply after",
  integration,
  async () => {
    const topic = `down-${uniqueId()}.events`;
    const total = 40;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic], 2);
    const agent = startDemoAgent({ behaviours: { p: { failTimes: 1_000_000, failStatus: 503 } } });
    const dir = await pipelineDir(
      `name: down\nsource: { topics: [${topic}] }\nroutes: [{ name: r, transform: { template: "{n}" }, invoke: { prompt_id: p } }]\n` +
        `delivery: { concurrency: 4, retries: { max: 2, backoff: 50ms } }\n`,
    );
    const env = {
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: `down-${uniqueId()}`,
      ARCHESTRA_URL: agent.url,
      KAFKA_COMMIT_INTERVAL: "200ms",
      KAFKA_SESSION_TIMEOUT: "6s",
    };
    try {
      await produce(
        kafka,
        topic,
        Array.from({ length: total }, (_, n) => ({ key: `k${n % 7}`, value: JSON.stringify({ n }) })),
      );
      const outageStart = Date.now();
      const first = await spawnBridge(env);
      // Without the circuit, 3 quick attempts each would dead-letter every message within a second.
      await within(agent.waitForRequests(8), "calls failing and the circuit probing");
      first.kill("SIGKILL");
      await first.status;
      const second = await spawnBridge(env);
      await within(agent.waitForRequests(agent.requests.length + 5), "the restarted bridge probing");
      const left = 20_000 - (Date.now() - outageStart);
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left)); // the outage itself, not a synchronisation
      agent.setBehaviour("p", undefined);
      const source = (r: { headers: Record<string, string> }) =>
        `${r.headers["x-source-partition"]}@${r.headers["x-source-offset"]}`;
      const replies = await readRecords(kafka, [`${topic}.responses`], total, {
        until: (records) => new Set(records.map(source)).size >= total,
        timeoutMs: 120_000,
      });
      second.kill("SIGTERM");
      assert.equal((await second.status).code, 0);
      assert.equal(new Set(replies.map(source)).size, total, "every source offset has a reply");
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0, "nothing dead-lettered during the outage");
    } finally {
      await agent.close();
    }
  },
);
