import assert from "node:assert/strict";
import type { Producer } from "kafkajs";
import { BatchingSender } from "../../src/kafka/batching_sender.ts";
import { OutputTopics, unwritableReason } from "../../src/kafka/output_topics.ts";
import { Abandoned } from "../../src/errors.ts";
import { RegistryUnavailable, UnencodableReply } from "../../src/registry/wire.ts";
import { RegistryWaits } from "../../src/stages/registry_waits.ts";
import { until } from "../support/until.ts";
import { decodeJob } from "../../src/stages/decode.ts";
import { matchJob } from "../../src/stages/match.ts";
import { transformJob } from "../../src/stages/transform.ts";
import { dlqRecord, type OutRecord, publish, publishJob, replyEnvelope } from "../../src/stages/publish.ts";
import type { Job } from "../../src/model.ts";
import { messageIdFor } from "../../src/dispatch.ts";
import { collect, from, job, pipeline, record, simple } from "./helpers.ts";

const text = (bytes: Uint8Array | Uint8Array[] | string) =>
  typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes as Uint8Array);

function replied(): Job {
  const j = job(simple, record('{"a":1}', { headers: { traceparent: "00-abc-def-01", "x-correlation-id": "corr-9" } }));
  decodeJob(j);
  matchJob(j);
  transformJob(j);
  j.reply = {
    text: "done",
    parts: [{ kind: "text", text: "done" }],
    taskId: null,
    contextId: "ctx",
    attempts: 2,
    latencyMs: 40,
    url: "http://agent/v1/a2a/p-any",
  };
  return j;
}

function recorder() {
  const sent: { topic: string; record: OutRecord }[] = [];
  return { sent, send: (topic: string, out: OutRecord) => (sent.push({ topic, record: out }), Promise.resolve()) };
}

Deno.test("a reply goes to <topic>.responses with the source key, the envelope and correlation headers", async () => {
  const sink = recorder();
  const j = replied();
  assert.deepEqual(await publishJob(j, sink), { job: j, outcome: "replied" });
  const [{ topic, record: out }] = sink.sent;
  assert.equal(topic, "orders.events.responses");
  assert.equal(text(out.key!), "K-1");
  assert.deepEqual(JSON.parse(text(out.value)), replyEnvelope(j));
  assert.deepEqual(out.headers, {
    "x-correlation-id": "corr-9",
    "x-source-topic": "orders.events",
    "x-source-partition": "0",
    "x-source-offset": "7",
    "x-pipeline": "orders",
    "x-route": "any",
    traceparent: "00-abc-def-01",
    "x-hop-count": "1",
  });
});

Deno.test("the envelope has the documented shape and never the token", () => {
  const envelope = replyEnvelope(replied());
  assert.deepEqual(envelope, {
    pipeline: "orders",
    route: "any",
    status: "completed",
    source: { topic: "orders.events", partition: 0, offset: "7", key: "K-1", timestamp: "2026-01-12T10:00:00.000Z" },
    agent: { url: "http://agent/v1/a2a/p-any", prompt_id: "p-any" },
    request: {
      text: '{\n  "a": 1\n}',
      message_id: messageIdFor("orders", { topic: "orders.events", partition: 0, offset: "7" }),
    },
    reply: { text: "done", data: null, parts: [{ kind: "text", text: "done" }], task_id: null, context_id: "ctx" },
    attempts: 2,
    latency_ms: 40,
  });
});

Deno.test("a failure goes to <topic>.dlq with the original bytes and headers plus error headers", async () => {
  const sink = recorder();
  const j = job(simple, record("{broken", { headers: { origin: "shop" } }));
  decodeJob(j);
  assert.equal((await publishJob(j, sink)).outcome, "dead-lettered");
  const [{ topic, record: out }] = sink.sent;
  assert.equal(topic, "orders.events.dlq");
  assert.equal(text(out.value), "{broken");
  assert.equal(text(out.key!), "K-1");
  assert.equal(text(out.headers.origin), "shop");
  assert.equal(out.headers["x-error-stage"], "decode");
  assert.equal(out.headers["x-error-class"], "permanent");
  assert.equal(out.headers["x-error-attempts"], "0");
  assert.match(String(out.headers["x-error-message"]), /^value is not valid JSON/);
  assert.ok(!Number.isNaN(Date.parse(String(out.headers["x-failed-at"]))));
});

Deno.test("DLQ error messages are one line and bounded", () => {
  const j = job(simple, record("x"));
  j.failure = { stage: "invoke", class: "permanent", message: "line one\nline two " + "x".repeat(5000), attempts: 1 };
  const headers = dlqRecord(j).headers;
  assert.ok(!String(headers["x-error-message"]).includes("\n"));
  assert.equal(String(headers["x-error-message"]).length, 1000);
});

Deno.test("a reply Kafka can never take is dead-lettered as a publish failure; other send errors stop the stream", async () => {
  const sink = recorder();
  const tooLarge = Object.assign(new Error("too large"), { type: "MESSAGE_TOO_LARGE" });
  let calls = 0;
  const ctx = {
    send: (topic: string, out: OutRecord) => calls++ === 0 ? Promise.reject(tooLarge) : sink.send(topic, out),
    isPermanent: (error: unknown) => (error as { type?: string }).type === "MESSAGE_TOO_LARGE",
  };
  const j = replied();
  assert.equal((await publishJob(j, ctx)).outcome, "dead-lettered");
  assert.equal(sink.sent[0].record.headers["x-error-stage"], "publish");

  const down = { send: () => Promise.reject(new Error("broker unreachable")), isPermanent: () => false };
  await assert.rejects(collect(publish(from([replied()]), down)), /broker unreachable/);
});

Deno.test("output topic names follow the pipeline's publish templates", async () => {
  const p = pipeline(`
name: custom
source: { topics: [a] }
routes: [{ name: r, invoke: { prompt_id: p } }]
publish: { responses: "replies.{$pipeline}", dlq: "{$topic}.failed" }
`);
  const sink = recorder();
  const ok = job(p, record("{}", { topic: "a" }));
  ok.reply = { text: "", parts: [], taskId: null, contextId: null, attempts: 1, latencyMs: 1, url: "u" };
  await publishJob(ok, sink);
  const bad = job(p, record("{", { topic: "a" }));
  decodeJob(bad);
  await publishJob(bad, sink);
  assert.deepEqual(sink.sent.map((s) => s.topic), ["replies.custom", "a.failed"]);
});

Deno.test("skipped jobs are not written", async () => {
  const sink = recorder();
  const j = job(simple, record("{}"));
  j.skipped = true;
  assert.equal((await publishJob(j, sink)).outcome, "skipped");
  assert.equal(sink.sent.length, 0);
});

Deno.test("message ids are UUID-shaped and the same for the same message and pipeline", () => {
  const a = messageIdFor("p", { topic: "t", partition: 0, offset: "1" });
  assert.equal(a, messageIdFor("p", { topic: "t", partition: 0, offset: "1" }));
  assert.notEqual(a, messageIdFor("q", { topic: "t", partition: 0, offset: "1" }));
  assert.notEqual(a, messageIdFor("p", { topic: "t", partition: 0, offset: "2" }));
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

Deno.test("a responses template with no value for a message dead-letters it as a publish failure", async () => {
  const p = pipeline(`
name: tenants
source: { topics: [a] }
routes: [{ name: r, invoke: { prompt_id: p } }]
publish: { responses: "replies.{tenant}" }
`);
  const sink = recorder();
  const j = job(p, record('{"other": 1}', { topic: "a" }));
  decodeJob(j);
  j.reply = { text: "", parts: [], taskId: null, contextId: null, attempts: 1, latencyMs: 1, url: "u" };
  assert.equal((await publishJob(j, sink)).outcome, "dead-lettered");
  assert.equal(sink.sent[0].topic, "a.dlq");
  assert.equal(sink.sent[0].record.headers["x-error-stage"], "publish");
  assert.match(String(sink.sent[0].record.headers["x-error-message"]), /no value for tenant/);
});

Deno.test("publish.format text writes the reply text alone; a data part becomes reply.data; hops count up", async () => {
  const p = pipeline(
    "name: plain\nsource: {topics: [orders.events]}\nroutes: [{name: r, invoke: {prompt_id: p}}]\npublish: {format: text}\n",
  );
  const j = job(p, record('{"a":1}', { headers: { "x-hop-count": "2" } }));
  decodeJob(j);
  matchJob(j);
  transformJob(j);
  const parts = [{ kind: "text", text: "fine" }, { kind: "data", data: { severity: "critical" } }];
  j.reply = { text: "fine", parts, taskId: null, contextId: null, attempts: 1, latencyMs: 5, url: "http://a" };
  const sink = recorder();
  await publishJob(j, sink);
  assert.equal(text(sink.sent[0].record.value), "fine");
  assert.equal(sink.sent[0].record.headers["x-hop-count"], "3");
  assert.deepEqual((replyEnvelope(j).reply as { data: unknown }).data, { severity: "critical" });
});

/** A producer whose sendBatch fails for the topics in `unwritable`, recording what each call carried. */
function fakeProducer(unwritable: Set<string>) {
  const calls: string[][] = [];
  const producer = {
    sendBatch: ({ topicMessages }: { topicMessages: { topic: string }[] }) => {
      calls.push(topicMessages.map((t) => t.topic).sort());
      const bad = topicMessages.find((t) => unwritable.has(t.topic));
      if (!bad) return Promise.resolve([]);
      return Promise.reject(Object.assign(new Error("denied"), { type: "TOPIC_AUTHORIZATION_FAILED" }));
    },
  };
  return { producer: producer as unknown as Producer, calls };
}

Deno.test("a topic that cannot be written fails only its own records, and from then on goes in batches of its own", async () => {
  const unwritable = new Set(["b.responses"]);
  const { producer, calls } = fakeProducer(unwritable);
  const sender = new BatchingSender(producer, () => false, { isUnwritable: (e) => !!unwritableReason(e) });
  const results = await Promise.allSettled([
    sender.send("a.responses", { value: "1" }),
    sender.send("b.responses", { value: "2" }),
  ]);
  assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected"]);
  assert.deepEqual(calls, [["a.responses", "b.responses"], ["a.responses"], ["b.responses"]]);
  calls.length = 0;
  const next = await Promise.allSettled([
    sender.send("a.responses", { value: "3" }),
    sender.send("b.responses", { value: "4" }),
  ]);
  assert.deepEqual(next.map((r) => r.status), ["fulfilled", "rejected"]);
  assert.deepEqual(calls.sort(), [["a.responses"], ["b.responses"]], "never in one batch with the others");
  unwritable.clear();
  await sender.send("b.responses", { value: "5" });
});

Deno.test("OutputTopics: records wait on an unwritable topic, one probes it, and a stale job's record gives up as abandoned", async () => {
  const changes: string[] = [];
  const holding: boolean[] = [];
  const outputs = new OutputTopics({
    probeDelayMs: 5,
    onChange: (topic, reason) => changes.push(`${topic} ${reason ?? "writable"}`),
    onHolding: (_, on) => holding.push(on),
  });
  let writable = false;
  let sends = 0;
  const send = () => {
    sends++;
    return writable
      ? Promise.resolve()
      : Promise.reject(Object.assign(new Error("no topic"), { type: "UNKNOWN_TOPIC_OR_PARTITION" }));
  };
  const stale = new AbortController();
  const first = outputs.write("t", "p", send);
  const gone = outputs.write("t", "p", send, () => stale.signal);
  await until(() => sends >= 3, "a probe or two");
  assert.deepEqual(changes, ["t missing"], "one change, however many probes");
  assert.deepEqual(outputs.unwritable, [{ topic: "t", reason: "missing" }]);
  stale.abort();
  await assert.rejects(gone, Abandoned);
  writable = true;
  await first;
  assert.deepEqual(changes, ["t missing", "t writable"]);
  assert.deepEqual(outputs.unwritable, []);
  assert.deepEqual([...outputs.writersOf("t")], ["p"]);
  await until(() => holding.at(-1) === false, "the pipeline resumed");
  assert.equal(holding[0], true, "the pipeline paused while records waited");
  await assert.rejects(
    outputs.write("t", "p", () => Promise.reject(new Error("other"))),
    /other/,
    "any other error is the caller's",
  );
  outputs.dispose();
});

/** `replied()` for a pipeline that writes its replies with a registered schema. */
function registeredReply(publish = "{ format: avro }"): Job {
  const j = replied();
  return { ...j, pipeline: { ...j.pipeline, publish: pipeline(`${ORDERS_YAML}publish: ${publish}\n`).publish } };
}
const ORDERS_YAML =
  "name: orders\nsource: { topics: [orders.events] }\nroutes: [{ name: any, invoke: { prompt_id: p } }]\n";

/** An encoder that fails as `failures` says, in turn, then answers with the bytes 0, 1, 2. */
function encoderFailing(...failures: Error[]) {
  const calls: { topic: string; envelope: Record<string, unknown>; encoding: unknown }[] = [];
  return {
    calls,
    url: "http://registry",
    encode(topic: string, envelope: Record<string, unknown>, encoding: unknown) {
      calls.push({ topic, envelope, encoding });
      const failure = failures.shift();
      return failure ? Promise.reject(failure) : Promise.resolve(new Uint8Array([0, 1, 2]));
    },
    prepare: () => Promise.resolve(),
  };
}

Deno.test("a registered reply is the encoder's bytes, for the envelope, under the pipeline's subject and registration", async () => {
  const sink = recorder();
  const encoder = encoderFailing();
  const j = registeredReply("{ format: json-schema, subject: record, auto_register: false }");
  const replies = { encoder, waits: new RegistryWaits(encoder.url, "replies") };
  assert.equal((await publishJob(j, sink, replies)).outcome, "replied");
  assert.deepEqual(sink.sent[0].record.value, new Uint8Array([0, 1, 2]));
  assert.equal(sink.sent[0].topic, "orders.events.responses");
  assert.deepEqual(encoder.calls[0].envelope, replyEnvelope(j));
  assert.deepEqual(encoder.calls[0].encoding, { format: "json-schema", subject: "record", autoRegister: false });
});

Deno.test("a registered reply waits while the registry cannot answer (nothing dead-lettered), and is written once it does", async () => {
  const sink = recorder();
  const encoder = encoderFailing(new RegistryUnavailable("HTTP 503"), new RegistryUnavailable("HTTP 503"));
  const pauses: number[] = [];
  const sleep = (ms: number) => (pauses.push(ms), Promise.resolve());
  const replies = { encoder, waits: new RegistryWaits(encoder.url, "replies", { sleep }) };
  assert.equal((await publishJob(registeredReply(), sink, replies)).outcome, "replied");
  assert.deepEqual(pauses, [1_000, 2_000]);
  assert.equal(sink.sent.length, 1);
});

Deno.test("a registered reply whose registry is down when the bridge stops is abandoned, not dead-lettered", async () => {
  const sink = recorder();
  const stopping = new AbortController();
  const encoder = encoderFailing(new RegistryUnavailable("HTTP 503"));
  const sleep = () => (stopping.abort(), Promise.resolve());
  const replies = { encoder, waits: new RegistryWaits(encoder.url, "replies", { stopping: stopping.signal, sleep }) };
  const j = registeredReply();
  assert.equal((await publishJob(j, sink, replies)).outcome, "abandoned");
  assert.equal(sink.sent.length, 0);
});

Deno.test("a registered reply that can never be encoded goes to the DLQ as permanent, with the reason", async () => {
  const sink = recorder();
  const encoder = encoderFailing(new UnencodableReply("subject x-value has no version of the reply schema"));
  const replies = { encoder, waits: new RegistryWaits(encoder.url, "replies") };
  const j = registeredReply();
  assert.equal((await publishJob(j, sink, replies)).outcome, "dead-lettered");
  assert.equal(sink.sent[0].topic, "orders.events.dlq");
  assert.equal(j.failure?.class, "permanent");
  assert.match(j.failure!.message, /reply not written: subject x-value has no version/);
});

Deno.test("registered replies waiting for the registry hold no publish slot: another pipeline's outcomes go on, and each key's replies keep their order", async () => {
  const sent: string[] = [];
  // One slot: a reply that waited for the registry inside it would hold up everything behind it.
  const sink = { concurrency: 1, send: (topic: string) => (sent.push(topic), Promise.resolve()) };
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const encoder = encoderFailing(new RegistryUnavailable("HTTP 503"));
  const replies = { encoder, waits: new RegistryWaits(encoder.url, "replies", { sleep: () => released }) };
  const first = registeredReply();
  const second = { ...registeredReply(), ctx: { ...first.ctx, offset: "8", topic: "orders.events" } };
  const plain = { ...replied(), ctx: { ...replied().ctx, topic: "other.events" } };
  const outcomes = publish(from([first, second, plain]), sink, replies)[Symbol.asyncIterator]();
  // Should the JSON reply wait behind them (the bug this shows), the registry comes back after 5 s and the test fails.
  const guard = setTimeout(release, 5_000);
  assert.equal((await outcomes.next()).value.job, plain, "the JSON pipeline's reply first");
  clearTimeout(guard);
  release();
  const rest = [(await outcomes.next()).value.job.ctx.offset, (await outcomes.next()).value.job.ctx.offset];
  assert.deepEqual(rest, ["7", "8"], "the registered replies of one key in their order");
  assert.deepEqual(sent, ["other.events.responses", "orders.events.responses", "orders.events.responses"]);
});
