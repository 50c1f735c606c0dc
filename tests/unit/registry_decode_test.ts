/**
 * The decode stage with a schema registry, against a stand-in decoder: which records go to the
 * registry, and the two classes of failure (the registry down: waited for, nothing dead-lettered;
 * an unknown schema id or bad bytes: permanent, naming the id). The real registry and serde library
 * are tested in tests/integration/schema_registry_test.ts.
 */
import assert from "node:assert/strict";
import { decoder } from "../../src/stages/decode.ts";
import {
  type RecordDecoder,
  type RegisteredFormat,
  RegistryUnavailable,
  schemaIdOf,
  UndecodableRecord,
} from "../../src/registry/wire.ts";
import { decimalText } from "../../src/registry/values.ts";
import { collect, from, job, pipeline, record } from "./helpers.ts";

const wire = (id: number, ...body: number[]) => ({ ...record(null), value: new Uint8Array([0, 0, 0, 0, id, ...body]) });

/** A registry that knows schema 1 (Avro), fails `downFor` calls first, and records what it was asked. */
function standIn(downFor = 0) {
  const asked: number[] = [];
  const decoder: RecordDecoder = {
    url: "http://registry",
    check: () => Promise.resolve(),
    decode: (_topic: string, bytes: Uint8Array, expected?: RegisteredFormat) => {
      const id = schemaIdOf(bytes)!;
      asked.push(id);
      if (asked.length <= downFor) return Promise.reject(new RegistryUnavailable("connect ECONNREFUSED"));
      if (id !== 1) return Promise.reject(new UndecodableRecord(`schema id ${id} is not registered`, id));
      if (expected && expected !== "avro") {
        return Promise.reject(new UndecodableRecord(`schema id 1 is avro, the pipeline reads ${expected}`, 1));
      }
      return Promise.resolve({ format: "avro" as const, schemaId: 1, value: { id: "ORD-1" } });
    },
  };
  return { decoder, asked };
}

const withFormat = (format: string) =>
  pipeline(
    `name: p\nsource: {topics: [orders.events], format: ${format}}\nroutes: [{name: r, invoke: {prompt_id: x}}]\n`,
  );

Deno.test("decode with a registry: auto reads the wire format with its schema, and JSON as JSON", async () => {
  const { decoder: registry, asked } = standIn();
  const p = withFormat("auto");
  const [registered, json] = await collect(
    decoder({ registry })(from([job(p, wire(1)), job(p, record('{"id":"ORD-2"}'))])),
  );
  assert.deepEqual(registered.value, { id: "ORD-1" });
  assert.deepEqual(json.value, { id: "ORD-2" });
  assert.deepEqual(asked, [1], "only the wire-format record went to the registry");
});

Deno.test("decode with a registry: auto leaves binary values alone (decode: bytes), though they start with a zero byte", async () => {
  const { decoder: registry, asked } = standIn();
  const p = pipeline(
    `name: p\nsource: {topics: [orders.events]}\ndecode: bytes\nroutes: [{name: r, invoke: {prompt_id: x}}]\n`,
  );
  const [binary] = await collect(decoder({ registry })(from([job(p, wire(1))])));
  assert.equal(binary.value, "AAAAAAE=");
  assert.deepEqual(asked, []);
});

Deno.test("decode with a registry: an unknown schema id and a record not in the wire format are permanent, naming what is wrong", async () => {
  const { decoder: registry } = standIn();
  const [unknown, plain, other] = await collect(
    decoder({ registry })(from([
      job(withFormat("auto"), wire(9, 1, 2)),
      job(withFormat("avro"), record('{"id":"ORD-2"}')),
      job(withFormat("protobuf"), wire(1)),
    ])),
  );
  assert.equal(unknown.failure?.class, "permanent");
  assert.match(unknown.failure!.message, /schema id 9/);
  assert.equal(plain.failure?.class, "permanent", "a pipeline that reads avro takes no JSON");
  assert.match(other.failure!.message, /schema id 1 is avro, the pipeline reads protobuf/);
});

Deno.test("decode with a registry: a registry that cannot answer is waited for, with doubling pauses, and nothing fails", async () => {
  const { decoder: registry, asked } = standIn(3);
  const pauses: number[] = [];
  const sleep = (ms: number) => (pauses.push(ms), Promise.resolve());
  const [decoded] = await collect(decoder({ registry, sleep })(from([job(withFormat("auto"), wire(1))])));
  assert.equal(decoded.failure, undefined);
  assert.deepEqual(decoded.value, { id: "ORD-1" });
  assert.equal(asked.length, 4);
  assert.deepEqual(pauses, [1_000, 2_000, 4_000]);
});

Deno.test("decode with a registry: a stop while the registry is down abandons the record (it comes again), it does not fail it", async () => {
  const { decoder: registry } = standIn(Infinity);
  const stopping = new AbortController();
  const sleep = () => (stopping.abort(), Promise.resolve());
  const [waiting] = await collect(
    decoder({ registry, stopping: stopping.signal, sleep })(from([job(withFormat("avro"), wire(1))])),
  );
  assert.equal(waiting.abandoned, true);
  assert.equal(waiting.failure, undefined);
});

Deno.test("decode with a registry: while one pipeline's records wait for the registry, another pipeline's go on; each pipeline's keep their order", async () => {
  const { decoder: registry } = standIn(1);
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const avro = withFormat("avro");
  const json = pipeline(
    `name: plain\nsource: {topics: [orders.events]}\nroutes: [{name: r, invoke: {prompt_id: x}}]\n`,
  );
  const out = decoder({ registry, sleep: () => released })(from([
    job(avro, { ...wire(1), offset: "1" }),
    job(json, record('{"id":"J-1"}')),
    job(avro, { ...wire(1), offset: "2" }),
    job(json, record('{"id":"J-2"}')),
  ]))[Symbol.asyncIterator]();
  const first = await out.next();
  const second = await out.next();
  assert.deepEqual([first.value.value, second.value.value], [{ id: "J-1" }, { id: "J-2" }], "JSON first, in order");
  release();
  const rest = [(await out.next()).value, (await out.next()).value];
  assert.deepEqual(rest.map((j) => [j.record.offset, j.value]), [["1", { id: "ORD-1" }], ["2", { id: "ORD-1" }]]);
  assert.equal((await out.next()).done, true);
});

Deno.test("Avro decimals keep every digit, negative ones too", () => {
  assert.equal(decimalText(new Uint8Array([0x01, 0xe2, 0x40]), 2), "1234.56");
  assert.equal(decimalText(new Uint8Array([0xfe, 0x1d, 0xc0]), 2), "-1234.56");
  assert.equal(decimalText(new Uint8Array([0x05]), 3), "0.005");
});

Deno.test("a URL that serves no registry API (404 without 'schema not found') is a misconfiguration, not an unknown schema; credentials in the URL are sent, never shown", async () => {
  const { SchemaRegistry } = await import("../../src/registry/schema_registry.ts");
  const seen: (string | null)[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
    seen.push(request.headers.get("authorization"));
    return new Response("<html>Not Found</html>", { status: 404, headers: { "content-type": "text/html" } });
  });
  try {
    const registry = new SchemaRegistry({ url: `http://bridge:s3cret@127.0.0.1:${server.addr.port}` });
    assert.doesNotMatch(registry.url, /s3cret|bridge@/);
    await assert.rejects(registry.check(), (error: RegistryUnavailable) => {
      assert.ok(error instanceof RegistryUnavailable);
      assert.equal(error.why, "misconfigured");
      return true;
    });
    await assert.rejects(registry.decode("t", new Uint8Array([0, 0, 0, 0, 1, 2])), RegistryUnavailable);
    assert.equal(seen[0], `Basic ${btoa("bridge:s3cret")}`);
  } finally {
    await server.shutdown();
  }
});
