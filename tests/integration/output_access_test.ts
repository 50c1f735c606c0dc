/**
 * Output topics the bridge cannot write, on a broker that enforces ACLs and does not create topics
 * (topics and ACLs belong to a platform team): a responses topic that does not exist, and one the
 * bridge is denied WRITE on. Each pauses only its own pipeline, `/readyz` says which topic and why,
 * one ERROR line names it, nothing is committed past the waiting messages, and once the topic is
 * created (or the ACL lifted) every reply arrives. The bridge runs with the ACLs docs/operations.md lists.
 */
import assert from "node:assert/strict";
import {
  AclOperationTypes,
  AclPermissionTypes,
  AclResourceTypes,
  type Admin,
  Partitioners,
  type Producer,
  ResourcePatternTypes,
} from "kafkajs";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { loadSettings } from "../../src/config/settings.ts";
import { throwawayBroker } from "../../src/infra/local_broker.ts";
import { createKafka } from "../../src/kafka/client.ts";
import { kafkaPublisher } from "../../src/kafka/sink.ts";
import { unwritableReason } from "../../src/kafka/output_topics.ts";
import type { Job } from "../../src/model.ts";
import { makeTestCertificates } from "../support/certs.ts";
import {
  committedOffsets,
  createTopics,
  produce,
  readAll,
  readRecords,
  topicSize,
  uniqueId,
} from "../support/kafka.ts";
import { type LogRecord, startMain } from "../support/main_process.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

type Operation = keyof typeof AclOperationTypes;

/** Allows (or denies) `principal` these operations on a resource. */
function acl(
  admin: Admin,
  resourceType: keyof typeof AclResourceTypes,
  resourceName: string,
  operations: Operation[],
  { prefixed = false, deny = false } = {},
) {
  return admin.createAcls({
    acl: operations.map((operation) => ({
      resourceType: AclResourceTypes[resourceType],
      resourceName,
      resourcePatternType: prefixed ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
      principal: "User:bridge",
      host: "*",
      operation: AclOperationTypes[operation],
      permissionType: deny ? AclPermissionTypes.DENY : AclPermissionTypes.ALLOW,
    })),
  });
}

type Guarantee = "at-least-once" | "exactly-once";

Deno.test(
  "an output topic that is missing or denied pauses only its pipeline, says so once, commits nothing past it, and resumes when fixed",
  integration,
  async (t) => {
    const password = `pw-${crypto.randomUUID()}`;
    const certs = await makeTestCertificates();
    const broker = await throwawayBroker((line) => console.error(`kafka (output access test): ${line}`), {
      users: { bridge: password },
      tls: { keyAndChainFile: certs.brokerKeyAndChainFile, caFile: certs.caFile },
      authorizer: true,
      autoCreateTopics: false,
    });
    // The test is the platform team: a super user on the plaintext listener.
    const plain = createKafka(loadSettings({}), [broker.bootstrap]);
    const admin = plain.admin();
    await admin.connect();
    const agent = startDemoAgent({});
    try {
      for (const guarantee of ["at-least-once", "exactly-once"] as Guarantee[]) {
        await t.step(guarantee, () => scenario(guarantee));
      }
      await t.step("a deleted output topic spoils no other topic's writes", deleted);
    } finally {
      await admin.disconnect();
      await agent.close();
      await broker.stop();
    }

    /**
     * kafkajs's producer asks for the metadata of every topic it ever wrote, and fails every send
     * once one of them is deleted (here at once: its metadata never outlives a send): the publisher
     * replaces it, and the other topics are still written.
     */
    async function deleted(): Promise<void> {
      const id = uniqueId();
      const [kept, gone] = [`kept-${id}.responses`, `gone-${id}.responses`];
      await createTopics(plain, [kept, gone]);
      const producers: Producer[] = [];
      const connected = async () => {
        const producer = plain.producer({ metadataMaxAge: 0, createPartitioner: Partitioners.DefaultPartitioner });
        await producer.connect();
        producers.push(producer);
        return producer;
      };
      const publisher = kafkaPublisher({
        producer: await connected(),
        renew: connected,
        exists: (topic) => admin.fetchTopicMetadata({ topics: [topic] }).then(() => true, () => false),
      });
      const record = (text: string) => ({ key: null, value: new TextEncoder().encode(text), headers: {} });
      const job = {} as Job; // only a publisher with output circuits reads it
      try {
        await publisher.send(kept, record("1"), job);
        await publisher.send(gone, record("1"), job);
        await admin.deleteTopics({ topics: [gone] });
        await assert.rejects(publisher.send(gone, record("2"), job), (error) => unwritableReason(error) === "missing");
        await publisher.send(kept, record("2"), job);
        assert.equal(producers.length, 2, "the spoilt producer was replaced");
        assert.deepEqual((await readAll(plain, kept)).map((r) => r.value?.toString()), ["1", "2"]);
      } finally {
        await Promise.all(producers.map((producer) => producer.disconnect()));
      }
    }

    async function scenario(guarantee: Guarantee): Promise<void> {
      const id = uniqueId();
      const [good, missing, denied] = ["good", "missing", "denied"].map((name) => `${name}-${id}.events`);
      const groupId = `acl-${id}`;
      const outputs = (topic: string) => [
        `${topic}.responses`,
        `${topic}.dlq`,
        `${topic}.answers`,
        `${topic}.answers.dlq`,
      ];
      await createTopics(plain, [good, missing, denied, ...outputs(good), ...outputs(denied)]);
      await createTopics(plain, outputs(missing).slice(1)); // no responses topic
      // What docs/operations.md lists: read the sources, write (and describe) the outputs, read the answers
      // topics, the tasks topic in full, the group and the task table's reader groups; with
      // exactly-once the transactional ids and the cluster's configs. No CREATE.
      for (const topic of [good, missing, denied]) {
        await acl(admin, "TOPIC", topic, ["READ", "WRITE", "DESCRIBE"], { prefixed: true });
      }
      await acl(admin, "TOPIC", "__agentstream.tasks", ["ALL"]);
      await acl(admin, "GROUP", groupId, ["READ"]);
      await acl(admin, "GROUP", "agentstream-tasks-", ["READ"], { prefixed: true });
      if (guarantee === "exactly-once") {
        for (const prefix of [`${groupId}-`, `${groupId}/`]) {
          await acl(admin, "TRANSACTIONAL_ID", prefix, ["WRITE", "DESCRIBE"], { prefixed: true });
        }
        await acl(admin, "CLUSTER", "kafka-cluster", ["DESCRIBE_CONFIGS"]);
      }
      await acl(admin, "TOPIC", `${denied}.responses`, ["WRITE"], { deny: true });
      const dir = await Deno.makeTempDir();
      for (const topic of [good, missing, denied]) {
        const name = topic.split("-")[0];
        await Deno.writeTextFile(
          `${dir}/${name}.yaml`,
          `name: ${name}\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: p } }]\n` +
            `delivery: { guarantee: ${guarantee} }\n`,
        );
      }
      const bridge = await startMain({
        PIPELINES_DIR: dir,
        KAFKA_BOOTSTRAP_SERVERS: broker.secure!.SASL_PLAINTEXT,
        KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
        KAFKA_SASL_USERNAME: "bridge",
        KAFKA_SASL_PASSWORD: password,
        KAFKA_GROUP_ID: groupId,
        ARCHESTRA_URL: agent.url,
        KAFKA_COMMIT_INTERVAL: "200ms",
      });
      const unwritableLines = (topic: string) => (record: LogRecord) =>
        record.level === "ERROR" && record.message.startsWith("cannot write to") && record.properties.topic === topic;
      try {
        const listening = await bridge.waitForLog((r) => r.message.startsWith("metrics on"), "the metrics port");
        const readyz = async () => {
          const response = await fetch(`http://127.0.0.1:${listening.properties.port}/readyz`);
          return { status: response.status, body: await response.json() };
        };
        const events = (tag: string) =>
          Array.from({ length: 5 }, (_, n) => ({ key: `k${n}`, value: `{"${tag}":${n}}` }));
        for (const topic of [good, missing, denied]) await produce(plain, topic, events(topic.split("-")[0]));

        // The good pipeline flows; the two others say why they cannot, once each.
        assert.equal((await readRecords(plain, [`${good}.responses`], 5)).length, 5);
        const [gone, refused] = await Promise.all([
          bridge.waitForLog(unwritableLines(`${missing}.responses`), "the missing topic's ERROR line"),
          bridge.waitForLog(unwritableLines(`${denied}.responses`), "the denied topic's ERROR line"),
        ]);
        assert.equal(gone.properties.reason, "missing");
        assert.deepEqual(gone.properties.pipelines, ["missing"]);
        assert.equal(refused.properties.reason, "denied");
        const report = await readyz();
        assert.equal(report.status, 503);
        assert.equal(report.body.outputs, false);
        assert.deepEqual(
          report.body.unwritable.map((u: { topic: string }) => u.topic).sort(),
          [`${denied}.responses`, `${missing}.responses`],
        );
        // Offset 0, the first waiting message (or none yet): nothing committed past the waiting messages.
        for (const topic of [missing, denied]) {
          assert.ok(Number((await committedOffsets(plain, groupId, topic))[0]) <= 0, `${topic} committed past them`);
        }
        assert.equal(await topicSize(plain, `${missing}.dlq`), 0, "nothing dead-lettered");

        // The platform team acts: both pipelines resume, and every reply arrives, once.
        await createTopics(plain, [`${missing}.responses`]);
        await admin.deleteAcls({
          filters: [{
            resourceType: AclResourceTypes.TOPIC,
            resourceName: `${denied}.responses`,
            resourcePatternType: ResourcePatternTypes.LITERAL,
            principal: "User:bridge",
            host: "*",
            operation: AclOperationTypes.WRITE,
            permissionType: AclPermissionTypes.DENY,
          }],
        });
        for (const topic of [missing, denied]) {
          await until(
            async () => (await committedOffsets(plain, groupId, topic))[0] === "5",
            `${topic}'s offsets committed`,
          );
          const replies = await readAll(plain, `${topic}.responses`);
          assert.deepEqual(replies.map((r) => r.key).sort(), ["k0", "k1", "k2", "k3", "k4"], "each reply once");
        }
        await until(async () => (await readyz()).status === 200, "ready again");
        assert.equal(await topicSize(plain, `${denied}.dlq`), 0, "nothing dead-lettered");
      } finally {
        bridge.child.kill("SIGTERM");
        const output = await bridge.output;
        // Probes went on meanwhile (one at a time, with doubling pauses): still one line each.
        const lines = `${output.stdout}\n${output.stderr}`.split("\n").filter((line) =>
          line.includes("cannot write to")
        );
        assert.equal(lines.filter((line) => line.includes(`${missing}.responses`)).length, 1, lines.join("\n"));
        assert.equal(lines.filter((line) => line.includes(`${denied}.responses`)).length, 1);
        assert.equal(output.code, 0, output.stderr.slice(-2000));
      }
    }
  },
);
