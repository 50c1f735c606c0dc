/**
 * Registered records end to end, on the real broker and a real registry (Apicurio Registry, started
 * by tests/support/registry.ts): records written by Confluent's serde library (not our decoder)
 * in Avro, Protobuf (the second message of its file, so its message index is not 0) and JSON
 * Schema are decoded, matched on fields, templated and answered; an unknown schema id and a
 * truncated body go to the DLQ as permanent, with their original bytes; a registry that answers
 * 503 for 20 s costs no record: every one is answered once it is back.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { file_google_protobuf_timestamp, FileDescriptorProtoSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AvroDeserializer } from "@confluentinc/schemaregistry/dist/serde/avro.js";
import { JsonDeserializer, JsonSerializer } from "@confluentinc/schemaregistry/dist/serde/json.js";
import { ProtobufSerializer } from "@confluentinc/schemaregistry/dist/serde/protobuf.js";
import { SerdeType } from "@confluentinc/schemaregistry/dist/serde/serde.js";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import type { FatalError } from "../../src/errors.ts";
import { serializedDescriptor } from "../../src/registry/protobuf_text.ts";
import { makeTestCertificates } from "../support/certs.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { createTopics, produce, readAll, readRecords, testKafka, uniqueId } from "../support/kafka.ts";
import { avroWriter, serdeClient, testRegistry } from "../support/registry.ts";
import { until } from "../support/until.ts";
import { AGENT_FLAVOURS } from "../support/flavours.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

const ORDER_AVRO = {
  type: "record",
  name: "Order",
  namespace: "shop",
  fields: [
    { name: "order_id", type: "string" },
    { name: "status", type: { type: "enum", name: "Status", symbols: ["NEW", "PAID"] } },
    { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 10, scale: 2 } },
    { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
    { name: "note", type: ["null", "string"], default: null },
  ],
};
const ORDER_PROTO = `syntax = "proto3";
package shop;

import "google/protobuf/timestamp.proto";

message Header {
  string source = 1;
}

message Line {
  string sku = 1;
}

message Order {
  string order_id = 1;
  string status = 2;
  int64 quantity = 3;
  map<string, Line> lines = 4;
  google.protobuf.Timestamp at = 5;
}
`;
const ORDER_JSON_SCHEMA = {
  type: "object",
  properties: { order_id: { type: "string" }, status: { type: "string" } },
  required: ["order_id", "status"],
};

/** The serde library's own serializers, writing under `<topic>-value` after registering the schema there. */
async function writers(url: string, topics: { avro: string; protobuf: string; json: string }) {
  const client = serdeClient(url);
  const avro = await avroWriter(url, topics.avro, ORDER_AVRO);
  await client.register(`${topics.protobuf}-value`, { schemaType: "PROTOBUF", schema: ORDER_PROTO });
  await client.register(`${topics.json}-value`, { schemaType: "JSON", schema: JSON.stringify(ORDER_JSON_SCHEMA) });
  const file = createFileRegistry(
    fromBinary(FileDescriptorProtoSchema, Buffer.from(serializedDescriptor(ORDER_PROTO, "order.proto"), "base64")),
    (name) => name === "google/protobuf/timestamp.proto" ? file_google_protobuf_timestamp : undefined,
  );
  const latest = { useLatestVersion: true };
  // deno-lint-ignore no-explicit-any
  const protobuf = new ProtobufSerializer(client, SerdeType.VALUE, { ...latest, registry: file } as any);
  const json = new JsonSerializer(client, SerdeType.VALUE, latest);
  const order = file.getFile("order.proto")!.messages.find((m) => m.name === "Order")!;
  return {
    avro,
    protobuf: (value: Record<string, unknown>) => protobuf.serialize(topics.protobuf, create(order, value)),
    json: (value: object) => json.serialize(topics.json, value),
  };
}

/** `request`, as a proxy in front of the registry at `url` passes it on. */
function forwardTo(url: string, request: Request): Promise<Response> {
  const target = new URL(request.url);
  const forwarded = `${new URL(url).origin}${target.pathname}${target.search}`;
  return fetch(forwarded, { method: request.method, headers: request.headers, body: request.body });
}

const PIPELINE = (prefix: string) => `
name: registered-${prefix}
source: { topics: ["${prefix}.*"] }
routes:
  - name: paid
    match: { fields: { status: PAID } }
    transform: { template: "{$topic}: order {order_id} paid" }
    invoke: { prompt_id: orders }
  - name: other
    transform: { template: "{$topic}: order {order_id} {status}" }
    invoke: { prompt_id: orders }
`;

Deno.test(
  "registered records (Avro, Protobuf with a message index, JSON Schema) written by the serde library are decoded, matched, templated and answered",
  integration,
  async () => {
    const url = await testRegistry();
    const prefix = `reg-${uniqueId()}`;
    const topics = { avro: `${prefix}.avro`, protobuf: `${prefix}.protobuf`, json: `${prefix}.json` };
    const { kafka } = await testKafka();
    await createTopics(kafka, Object.values(topics));
    const write = await writers(url, topics);
    await produce(kafka, topics.avro, [{
      key: "a",
      value: await write.avro({
        order_id: "A-1",
        status: "PAID",
        amount: Buffer.from([0x01, 0xe2, 0x40]),
        at: 1_700_000_000_123,
        note: null,
      }),
    }]);
    await produce(kafka, topics.protobuf, [{
      key: "p",
      value: await write.protobuf({
        orderId: "P-1",
        status: "NEW",
        quantity: 2n ** 60n,
        // A map of messages and a well-known type: the schema imports google/protobuf/timestamp.proto.
        lines: { first: { sku: "S-1" } },
        at: timestampFromMs(1_700_000_000_123),
      }),
    }]);
    await produce(kafka, topics.json, [{ key: "j", value: await write.json({ order_id: "J-1", status: "PAID" }) }]);
    // A plain JSON event beside them, read as JSON (format auto).
    await produce(kafka, topics.json, [{ key: "plain", value: '{"order_id":"J-2","status":"NEW"}' }]);
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([PIPELINE(prefix)]),
      archestraUrl: agent.url,
      schemaRegistry: { url },
    });
    try {
      const replies = await readRecords(kafka, Object.values(topics).map((t) => `${t}.responses`), 4);
      const texts = replies.map((r) => JSON.parse(r.value!.toString()).request.text).sort();
      assert.deepEqual(texts, [
        `${topics.avro}: order A-1 paid`,
        `${topics.json}: order J-1 paid`,
        `${topics.json}: order J-2 NEW`,
        `${topics.protobuf}: order P-1 NEW`,
      ]);
      assert.equal(bridge.stats.deadLettered, 0);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

/** A pipeline answering JSON events on `topics`, writing its replies as `publish` says. */
const REPLYING = (name: string, topics: string[], publish: string) => `
name: ${name}
source: { topics: ${JSON.stringify(topics)} }
routes:
  - name: ask
    transform: { template: "order {order_id}" }
    invoke: { prompt_id: orders }
publish: ${publish}
`;

Deno.test(
  "replies written with a registered schema (Avro under <topic>-value, JSON Schema under <topic>-io.agentstream.Reply) are read back by the serde library; without auto-registration, a subject that lacks the schema stops the start where it is known then, and dead-letters with the reason where it is not",
  integration,
  async () => {
    const url = await testRegistry();
    const prefix = `regout-${uniqueId()}`;
    const { kafka } = await testKafka();
    const sources = ["avro", "json", "pre", "none"].map((kind) => `${prefix}.${kind}`);
    await createTopics(kafka, sources);
    const client = serdeClient(url);
    // A platform team's registration of the shipped schema file, for the pipeline that may not register.
    const shipped = await Deno.readTextFile("config/schemas/reply.avsc");
    await client.register(`${prefix}.pre.responses-value`, { schemaType: "AVRO", schema: shipped });
    for (const topic of sources) await produce(kafka, topic, [{ key: "k", value: '{"order_id":"R-1"}' }]);
    const pipelines = [
      REPLYING(`${prefix}-avro`, [`${prefix}.avro`], "{ format: avro }"),
      REPLYING(`${prefix}-json`, [`${prefix}.json`], "{ format: json-schema, subject: topic-record }"),
      // A glob: its subjects are not known at start, so the one without the schema is found at its reply.
      REPLYING(`${prefix}-given`, [`${prefix}.pre`, `${prefix}.no*`], "{ format: avro, auto_register: false }"),
    ];
    // Known at start (an exact topic), a subject without the schema stops the start instead.
    await assert.rejects(
      startTestBridge({
        pipelines: pipelinesFrom([
          REPLYING(`${prefix}-none`, [`${prefix}.none`], "{ format: avro, auto_register: false }"),
        ]),
        archestraUrl: "http://127.0.0.1:1",
        schemaRegistry: { url },
      }),
      (error: FatalError) => {
        assert.equal(error.exitCode, 2);
        assert.match(error.message, /publish: subject .*\.none\.responses-value has no version of the reply schema/);
        return true;
      },
    );
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom(pipelines),
      archestraUrl: agent.url,
      schemaRegistry: { url },
    });
    try {
      await until(() => bridge.stats.replied === 3 && bridge.stats.deadLettered === 1, "three replies, one DLQ record");
      const read = async (topic: string, deserializer: { deserialize(t: string, b: Buffer): Promise<unknown> }) => {
        const [record] = await readAll(kafka, `${topic}.responses`);
        // deno-lint-ignore no-explicit-any
        return await deserializer.deserialize(`${topic}.responses`, record.value!) as Record<string, any>;
      };
      const avro = new AvroDeserializer(client, SerdeType.VALUE, {});
      const json = new JsonDeserializer(client, SerdeType.VALUE, { validate: true });
      const fromAvro = await read(`${prefix}.avro`, avro);
      assert.equal(fromAvro.request.text, "order R-1");
      assert.equal(fromAvro.source.topic, `${prefix}.avro`);
      assert.equal(typeof JSON.parse(fromAvro.reply.parts), "object", "free-form parts as JSON text");
      assert.ok(fromAvro.reply.text.length > 0);
      const fromJson = await read(`${prefix}.json`, json);
      assert.equal(fromJson.request.text, "order R-1");
      assert.ok(Array.isArray(fromJson.reply.parts));
      assert.deepEqual(await client.getAllSubjects().then((all) => all.filter((s) => s.startsWith(prefix)).sort()), [
        `${prefix}.avro.responses-value`,
        `${prefix}.json.responses-io.agentstream.Reply`,
        `${prefix}.pre.responses-value`,
      ]);
      assert.equal((await read(`${prefix}.pre`, avro)).request.text, "order R-1");
      const [dead] = await readAll(kafka, `${prefix}.none.dlq`);
      assert.equal(dead.headers["x-error-class"], "permanent");
      assert.match(
        dead.headers["x-error-message"],
        /subject .*none\.responses-value has no version of the reply schema/,
      );
      assert.equal(dead.value!.toString(), '{"order_id":"R-1"}', "the DLQ keeps the original bytes");
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

for (const { name, flavour, version } of AGENT_FLAVOURS) {
  Deno.test(
    `${name}: its reply written in Avro and in JSON Schema is read back by the serde library, text, parts and ids as the JSON envelope has them`,
    integration,
    async () => {
      const url = await testRegistry();
      const prefix = `regflav-${uniqueId()}`;
      const { kafka } = await testKafka();
      const topics = ["json", "avro", "schema"].map((kind) => `${prefix}.${kind}`);
      await createTopics(kafka, topics);
      // The same event to each: the agent gives the same answer in three encodings.
      for (const topic of topics) await produce(kafka, topic, [{ key: "k", value: '{"order_id":"F-1"}' }]);
      const agent = startDemoAgent({ flavour });
      const bridge = await startTestBridge({
        pipelines: pipelinesFrom([
          REPLYING(`${prefix}-json`, [topics[0]], "{ format: envelope }"),
          REPLYING(`${prefix}-avro`, [topics[1]], "{ format: avro }"),
          REPLYING(`${prefix}-schema`, [topics[2]], "{ format: json-schema }"),
        ]),
        archestraUrl: agent.url,
        archestraA2a: version,
        schemaRegistry: { url },
      });
      try {
        const replies = await readRecords(kafka, topics.map((topic) => `${topic}.responses`), 3);
        const of = (topic: string) => replies.find((r) => r.headers["x-source-topic"] === topic)!;
        const client = serdeClient(url);
        const plain = JSON.parse(of(topics[0]).value!.toString());
        const avro = await new AvroDeserializer(client, SerdeType.VALUE, {})
          .deserialize("", of(topics[1]).value!) as typeof plain;
        const schema = await new JsonDeserializer(client, SerdeType.VALUE, { validate: true })
          .deserialize("", of(topics[2]).value!) as typeof plain;
        assert.ok(plain.reply.text, "the agent answered");
        for (const reply of [avro.reply, schema.reply]) {
          assert.equal(reply.text, plain.reply.text);
          // Ids differ call to call; whether the flavour gives them does not.
          assert.equal(reply.task_id === null, plain.reply.task_id === null);
          assert.equal(reply.context_id === null, plain.reply.context_id === null);
        }
        assert.deepEqual(JSON.parse(avro.reply.parts), plain.reply.parts);
        assert.deepEqual(schema.reply.parts, plain.reply.parts);
        assert.deepEqual(avro.reply.data === null ? null : JSON.parse(avro.reply.data), plain.reply.data);
        assert.equal(avro.status, plain.status);
        assert.equal(avro.agent.url, plain.agent.url);
      } finally {
        await bridge.stop();
        await agent.close();
      }
    },
  );
}

Deno.test(
  "an unknown schema id and a truncated body go to the DLQ as permanent, with their original bytes and the schema id",
  integration,
  async () => {
    const url = await testRegistry();
    const prefix = `regbad-${uniqueId()}`;
    const topic = `${prefix}.avro`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const write = await writers(url, { avro: topic, protobuf: `${prefix}.p`, json: `${prefix}.j` });
    const good = await write.avro({ order_id: "A-2", status: "NEW", amount: Buffer.from([1]), at: 0, note: "x" });
    const unknown = new Uint8Array([0, 0x7f, 0xff, 0xff, 0x01, 2, 3]);
    const truncated = good.subarray(0, 9);
    await produce(kafka, topic, [
      { key: "unknown", value: unknown },
      { key: "truncated", value: truncated },
      { key: "good", value: good },
    ]);
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([PIPELINE(prefix)]),
      archestraUrl: agent.url,
      schemaRegistry: { url },
    });
    try {
      await until(() => bridge.stats.replied === 1 && bridge.stats.deadLettered === 2, "one reply, two DLQ records");
      await bridge.stop();
      const dead = await readAll(kafka, `${topic}.dlq`);
      const byKey = Object.fromEntries(dead.map((r) => [r.key, r]));
      assert.equal(byKey.unknown.headers["x-error-class"], "permanent");
      assert.match(byKey.unknown.headers["x-error-message"], /schema id 2147483393 is not registered/);
      assert.deepEqual(new Uint8Array(byKey.unknown.value!), unknown, "the original bytes");
      assert.equal(byKey.truncated.headers["x-error-class"], "permanent");
      assert.match(byKey.truncated.headers["x-error-message"], /schema id \d+/);
      assert.deepEqual(new Uint8Array(byKey.truncated.value!), new Uint8Array(truncated));
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "a registry that answers 503 for 20 s dead-letters nothing: every record is answered once it is back, and a pipeline of JSON events goes on meanwhile",
  integration,
  async () => {
    const url = await testRegistry();
    // A proxy in front of the registry: down (503) until told otherwise.
    let down = true;
    const proxy = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (request) => {
      if (down) return Response.json({ error_code: 50301, message: "unavailable" }, { status: 503 });
      return await forwardTo(url, request);
    });
    const proxied = `http://127.0.0.1:${proxy.addr.port}${new URL(url).pathname}`;
    const prefix = `regdown-${uniqueId()}`;
    const topic = `${prefix}.avro`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const write = await writers(url, { avro: topic, protobuf: `${prefix}.p`, json: `${prefix}.j` });
    const events = await Promise.all(
      Array.from({ length: 5 }, async (_, n) => ({
        key: `k${n}`,
        value: await write.avro({ order_id: `D-${n}`, status: "NEW", amount: Buffer.from([n]), at: n, note: null }),
      })),
    );
    await produce(kafka, topic, events);
    // Another pipeline, of JSON events: the outage is not its own, so it goes on.
    const plain = `${prefix}-plain.json`;
    await createTopics(kafka, [plain]);
    await produce(kafka, plain, [{ key: "j", value: '{"order_id":"J-9","status":"NEW"}' }]);
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([PIPELINE(prefix), PIPELINE(`${prefix}-plain`)]),
      archestraUrl: agent.url,
      schemaRegistry: { url: proxied },
    });
    try {
      await until(() => bridge.stats.replied === 1, "the JSON pipeline's event answered while the registry is down");
      const upAt = Date.now() + 20_000;
      await until(() => Date.now() >= upAt, "20 s of a registry that answers 503", 30_000);
      assert.equal(bridge.stats.replied, 1, "no registered record answered");
      assert.equal(bridge.stats.deadLettered, 0, "nothing dead-lettered");
      down = false;
      await until(() => bridge.stats.replied === 6, "every record answered", 60_000);
      assert.equal(bridge.stats.deadLettered, 0);
    } finally {
      await bridge.stop();
      await agent.close();
      await proxy.shutdown();
    }
  },
);

Deno.test(
  "a registry behind TLS is trusted with Kafka's CA (KAFKA_SSL_CA_FILE): its records are answered; without that CA the start stops (exit 2) naming the setting",
  integration,
  async () => {
    const url = await testRegistry();
    const certs = await makeTestCertificates();
    const read = (file: string) => Deno.readTextFile(`${certs.dir}/${file}`);
    const tls = Deno.serve(
      { port: 0, hostname: "127.0.0.1", cert: await read("broker.crt"), key: await read("broker.key"), onListen() {} },
      (request) => forwardTo(url, request),
    );
    const secured = `https://127.0.0.1:${tls.addr.port}${new URL(url).pathname}`;
    const prefix = `regtls-${uniqueId()}`;
    const topic = `${prefix}.avro`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const write = await writers(url, { avro: topic, protobuf: `${prefix}.p`, json: `${prefix}.j` });
    const order = { order_id: "T-1", status: "PAID", amount: Buffer.from([1]), at: 0, note: null };
    await produce(kafka, topic, [{ key: "t", value: await write.avro(order) }]);
    const agent = startDemoAgent();
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([PIPELINE(prefix)]),
      archestraUrl: agent.url,
      schemaRegistry: { url: secured },
      kafkaCaFile: certs.caFile,
    });
    try {
      const [reply] = await readRecords(kafka, [`${topic}.responses`], 1);
      assert.equal(JSON.parse(reply.value!.toString()).request.text, `${topic}: order T-1 paid`);
      await assert.rejects(
        startTestBridge({
          pipelines: pipelinesFrom([PIPELINE(prefix)]),
          archestraUrl: agent.url,
          schemaRegistry: { url: secured },
        }),
        (error: FatalError) => {
          assert.equal(error.exitCode, 2);
          assert.match(error.message, /TLS certificate is not trusted[^]*SCHEMA_REGISTRY_SSL_CA_FILE/);
          return true;
        },
      );
    } finally {
      await bridge.stop();
      await agent.close();
      await tls.shutdown();
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
);

Deno.test(
  "a registry that refuses the bridge's credentials stops the start with a configuration error (exit 2), the password unsaid",
  integration,
  async () => {
    const registry = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      () => Response.json({ error_code: 40101, message: "Unauthorized" }, { status: 401 }),
    );
    const agent = startDemoAgent();
    try {
      await assert.rejects(
        startTestBridge({
          pipelines: pipelinesFrom([PIPELINE(`regauth-${uniqueId()}`)]),
          archestraUrl: agent.url,
          schemaRegistry: { url: `http://127.0.0.1:${registry.addr.port}`, username: "bridge", password: "s3cret-pw" },
        }),
        (error: FatalError) => {
          assert.equal(error.exitCode, 2);
          assert.match(error.message, /refuses the credentials \(HTTP 401\)/);
          assert.match(error.message, /SCHEMA_REGISTRY_USERNAME/);
          assert.doesNotMatch(error.message, /s3cret-pw/);
          return true;
        },
      );
    } finally {
      await agent.close();
      await registry.shutdown();
    }
  },
);
