import assert from "node:assert/strict";
import { decode, decodeJob } from "../../src/stages/decode.ts";
import { matchJob } from "../../src/stages/match.ts";
import { transformJob } from "../../src/stages/transform.ts";
import { collect, from, job, pipeline, record, simple } from "./helpers.ts";

Deno.test("decode() parses JSON and dead-letters bad JSON as permanent", () => {
  const good = job(simple, record('{"order_id":"A"}'));
  decodeJob(good);
  assert.deepEqual(good.value, { order_id: "A" });
  const bad = job(simple, record("{oops"));
  decodeJob(bad);
  assert.equal(bad.failure?.stage, "decode");
  assert.equal(bad.failure?.class, "permanent");
  assert.match(bad.failure!.message, /not valid JSON/);
});

Deno.test("decode() treats a tombstone and invalid UTF-8 as permanent failures", () => {
  const tombstone = job(simple, record(null));
  decodeJob(tombstone);
  assert.match(tombstone.failure!.message, /no value/);
  const binary = job(simple, { ...record(""), value: new Uint8Array([0xff, 0xfe]) });
  decodeJob(binary);
  assert.match(binary.failure!.message, /UTF-8/);
});

Deno.test("decode() keeps text as text and bytes as base64", () => {
  const text = job(
    pipeline("name: t\nsource: {topics: [a]}\ndecode: text\nroutes: [{name: r, invoke: {prompt_id: p}}]"),
    record("hi {"),
  );
  decodeJob(text);
  assert.equal(text.value, "hi {");
  const bytes = job(
    pipeline("name: b\nsource: {topics: [a]}\ndecode: bytes\nroutes: [{name: r, invoke: {prompt_id: p}}]"),
    record("hi"),
  );
  decodeJob(bytes);
  assert.equal(bytes.value, "aGk=");
});

Deno.test("the decode stage passes failed jobs through untouched", async () => {
  const failed = job(simple, record("{oops"));
  failed.failure = { stage: "decode", class: "permanent", message: "earlier", attempts: 0 };
  const [out] = await collect(decode(from([failed])));
  assert.equal(out.failure?.message, "earlier");
  assert.equal(out.value, undefined);
});

Deno.test("match() takes the first route whose headers and fields all match", () => {
  const shipped = job(simple, record('{"event_type":"shipped"}', { headers: { source: "shop" } }));
  decodeJob(shipped);
  matchJob(shipped);
  assert.equal(shipped.route?.name, "shipped");
  const noHeader = job(simple, record('{"event_type":"shipped"}'));
  decodeJob(noHeader);
  matchJob(noHeader);
  assert.equal(noHeader.route?.name, "any");
});

Deno.test("match() reads dotted field paths and route topic globs", () => {
  const p = pipeline(`
name: nested
source: { topics: ["**"] }
routes:
  - name: eu
    match: { topics: ["orders.*"], fields: { "customer.region": eu, "total": 10 } }
    invoke: { prompt_id: p }
`);
  const eu = job(p, record('{"customer":{"region":"eu"},"total":10}'));
  decodeJob(eu);
  matchJob(eu);
  assert.equal(eu.route?.name, "eu");
  const otherTopic = job(p, record('{"customer":{"region":"eu"},"total":10}', { topic: "orders.events.x" }));
  decodeJob(otherTopic);
  matchJob(otherTopic);
  assert.equal(otherTopic.route, undefined);
  assert.equal(otherTopic.skipped, true);
});

Deno.test("match() with unmatched: dlq makes a permanent match failure", () => {
  const p = pipeline(`
name: strict
source: { topics: [a] }
unmatched: dlq
routes: [{ name: r, match: { fields: { kind: x } }, invoke: { prompt_id: p } }]
`);
  const j = job(p, record('{"kind":"y"}', { topic: "a" }));
  decodeJob(j);
  matchJob(j);
  assert.equal(j.skipped, undefined);
  assert.equal(j.failure?.stage, "match");
  assert.equal(j.failure?.class, "permanent");
});

Deno.test("transform() fills fields, nested paths and metadata", () => {
  const j = job(
    simple,
    record('{"event_type":"shipped","order_id":"ORD-1","customer":{"email":"a@b.c"}}', {
      headers: { source: "shop" },
    }),
  );
  decodeJob(j);
  matchJob(j);
  transformJob(j);
  assert.equal(j.text, "Order ORD-1 shipped to a@b.c (orders.events/0@7 key K-1)");
});

Deno.test("transform() without a template sends the value as indented JSON, or text as is", () => {
  const j = job(simple, record('{"a":1}'));
  decodeJob(j);
  matchJob(j);
  transformJob(j);
  assert.equal(j.route?.name, "any");
  assert.equal(j.text, '{\n  "a": 1\n}');
});

Deno.test("transform() fails permanently on a missing field unless on_missing: empty", () => {
  const strict = job(simple, record('{"event_type":"shipped"}', { headers: { source: "shop" } }));
  decodeJob(strict);
  matchJob(strict);
  transformJob(strict);
  assert.equal(strict.failure?.stage, "transform");
  assert.equal(strict.failure?.message, "template fields missing: order_id, customer.email");

  const lenient = pipeline(`
name: lenient
source: { topics: [a] }
routes: [{ name: r, transform: { template: "[{missing}] {$headers.trace}", on_missing: empty }, invoke: { prompt_id: p } }]
`);
  const j = job(lenient, record("{}", { topic: "a" }));
  decodeJob(j);
  matchJob(j);
  transformJob(j);
  assert.equal(j.failure, undefined);
  assert.equal(j.text, "[] ");
});
