/**
 * `deno task send --format avro` as a user runs it (a subprocess), against the real broker and the
 * real registry: what it writes, the bridge decodes and answers with the shipped Avro example
 * pipeline; a missing registry, a schema that is no Avro, an event that does not fit, and a
 * registry that refuses the schema each stop it before anything is sent, saying why.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { schemaIdOf } from "../../src/registry/wire.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { createTopics, readRecords, testKafka, topicSize, uniqueId } from "../support/kafka.ts";
import { testRegistry } from "../support/registry.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };
const root = fileURLToPath(new URL("../../", import.meta.url));
const SCHEMA = `${root}pipelines/examples/avro/payment.avsc`;

/** `deno task send …` in the repository, with only `env` set (no .env of the machine's). */
async function send(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", `--config=${root}deno.json`, "send", ...args],
    cwd: root,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp", ...env },
    stdin: "null",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

const FAILED_PAYMENT = JSON.stringify({
  payment_id: "P-2001",
  order_id: "ORD-9",
  status: "FAILED",
  amount: "15",
  currency: "USD",
  at: "2025-01-12T11:05:00+01:00",
  failure_reason: "card declined",
});

Deno.test(
  "send --format avro writes wire-format records under <topic>-value that the bridge answers with the shipped Avro pipeline",
  integration,
  async () => {
    const url = await testRegistry();
    const { kafka, brokers } = await testKafka();
    const topic = `payments-${uniqueId()}.events`;
    await createTopics(kafka, [topic]);
    const sent = await send(
      ["--format", "avro", "--schema", SCHEMA, "--topic", topic, "--key", "P-2001", "--value", FAILED_PAYMENT],
      { KAFKA_BOOTSTRAP_SERVERS: brokers.join(","), SCHEMA_REGISTRY_URL: url },
    );
    assert.equal(sent.stderr, "");
    assert.equal(sent.stdout, `sent 1 event to ${topic} (Avro, ${topic}-value)\n`);
    assert.equal(sent.code, 0);
    const [record] = await readRecords(kafka, [topic], 1);
    const registered = await (await fetch(`${url}/subjects/${topic}-value/versions/latest`)).json();
    assert.equal(
      schemaIdOf(new Uint8Array(record.value!)),
      registered.id,
      "the schema id registered under <topic>-value",
    );

    const yaml = (await Deno.readTextFile(`${root}pipelines/examples/avro/payments.yaml`))
      .replace("topics: [payments.events]", `topics: [${topic}]`);
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([yaml], { PAYMENTS_PROMPT_ID: "payments" }),
      archestraUrl: agent.url,
      schemaRegistry: { url },
    });
    try {
      const [reply] = await readRecords(kafka, [`${topic}.responses`], 1);
      const envelope = JSON.parse(reply.value!.toString());
      assert.equal(envelope.route, "failed");
      assert.equal(
        envelope.request.text,
        "Payment P-2001 for order ORD-9 failed at 2025-01-12T10:05:00.000Z: card declined. 15.00 USD were not charged. Write the customer a short note.",
      );
      assert.equal(reply.key, "P-2001");
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "send --format avro stops before sending, saying why: no registry, no Avro schema, an event that does not fit, a refused schema",
  integration,
  async () => {
    const url = await testRegistry();
    const { kafka, brokers } = await testKafka();
    const env = { KAFKA_BOOTSTRAP_SERVERS: brokers.join(","), SCHEMA_REGISTRY_URL: url };
    const topic = `payments-${uniqueId()}.events`;
    // The subject has an earlier schema that this one may not follow (BACKWARD: its fields changed type).
    const subject = `${url}/subjects/${topic}-value`;
    const earlier = {
      type: "record",
      name: "Payment",
      namespace: "shop.payments",
      fields: [{ name: "amount", type: "int" }],
    };
    const registry = (path: string, method: string, body: unknown) =>
      fetch(`${path}`, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
        .then((response) => response.json());
    await registry(`${subject}/versions`, "POST", { schema: JSON.stringify(earlier) });
    await registry(`${url}/config/${topic}-value`, "PUT", { compatibility: "BACKWARD" });
    const notAvro = await Deno.makeTempFile({ suffix: ".avsc" });
    await Deno.writeTextFile(notAvro, '{"type": "record", "name": "P", "fields": [{"name": "a", "type": "money"}]}');
    const one = (
      schema: string,
      value = FAILED_PAYMENT,
    ) => ["--format", "avro", "--schema", schema, "--topic", topic, "--value", value];

    const [noRegistry, badSchema, misfit, refused] = await Promise.all([
      send(["--format", "avro"], { KAFKA_BOOTSTRAP_SERVERS: env.KAFKA_BOOTSTRAP_SERVERS }),
      send(one(notAvro), env),
      send(one(SCHEMA, JSON.stringify({ ...JSON.parse(FAILED_PAYMENT), status: "DECLINED", amount: "1.005" })), env),
      send(one(SCHEMA), env),
    ]);
    assert.equal(noRegistry.code, 2);
    assert.equal(
      noRegistry.stderr,
      "environment:SCHEMA_REGISTRY_URL: not set: --format avro registers its schema there (deno task registry:start prints one)\n",
    );
    assert.equal(badSchema.code, 1);
    assert.equal(badSchema.stderr, `--schema ${notAvro}: not an Avro schema: undefined type name: money\n`);
    assert.equal(misfit.code, 1);
    assert.deepEqual(misfit.stderr.trim().split("\n"), [
      `--value.status: "DECLINED" is not one of AUTHORIZED, CAPTURED, FAILED, REFUNDED (${SCHEMA})`,
      `--value.amount: "1.005" is not a decimal (digits, at most 2 after the point, 12 in all) (${SCHEMA})`,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`^the schema registry at ${url} refuses the schema for ${topic}-value: `));
    assert.match(refused.stderr, /[Ii]ncompatible/);
    assert.equal(await topicSize(kafka, topic), 0, "nothing was sent");
  },
);
