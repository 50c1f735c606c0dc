/** The core's bookkeeping without a broker: the ledger, flow control, and containment of throws. */
import assert from "node:assert/strict";
import { FINISHED_MESSAGE_BYTES, Ledger } from "../../src/delivery/ledger.ts";
import { UncommittedBudget } from "../../src/delivery/uncommitted_budget.ts";
import { parseByteSize } from "../../src/util/byte_size.ts";
import { Commits } from "../../src/delivery/commits.ts";
import { fitting } from "../../src/kafka/transactions.ts";
import { batchBytes } from "../../src/kafka/record_limits.ts";
import { FlowControl, type PauseReason } from "../../src/delivery/flow_control.ts";
import { contextFor, dispatch } from "../../src/dispatch.ts";
import { type Batch, partitionId } from "../../src/model.ts";
import { perJob } from "../../src/stages/stage.ts";
import { transformJob } from "../../src/stages/transform.ts";
import { decodeJob } from "../../src/stages/decode.ts";
import { matchJob } from "../../src/stages/match.ts";
import { talkOf } from "../../src/stages/invoke.ts";
import { Conversations } from "../../src/a2a/conversations.ts";
import { dlqRecord, publishJob } from "../../src/stages/publish.ts";
import { failure } from "../../src/errors.ts";
import { collect, from, job, pipeline, record, simple } from "./helpers.ts";

Deno.test("Ledger: a message is committable once every pipeline's job (and every fan-out part) has settled", () => {
  const ledger = new Ledger();
  const ackOf = ledger.receive("t", 0, ["0", "1"], ["a", "b"]);
  assert.equal(ledger.inFlight("a"), 2);
  const parts = ackOf("0", "a").split(2)!;
  assert.equal(ledger.inFlight("a"), 4, "each fan-out part counts");
  ackOf("0", "b").done();
  ackOf("0", "a").done();
  parts[0].done();
  assert.deepEqual(ledger.take().offsets, [{ topic: "t", partition: 0, offset: "0" }], "one part still out");
  parts[1].done();
  assert.deepEqual(ledger.take().offsets, [{ topic: "t", partition: 0, offset: "1" }]);
  assert.equal(ledger.inFlight("a"), 1);
  assert.equal(ledger.pending, 1);
});

Deno.test("Ledger: records are staged only when their message's last outcome is in, with its offset", () => {
  const ledger = new Ledger();
  const ackOf = ledger.receive("t", 0, ["5"], ["a", "b"]);
  const reply = { topic: "t.responses", record: { key: null, value: new Uint8Array(), headers: {} } };
  ackOf("5", "a").done([reply]);
  const first = ledger.take();
  assert.deepEqual(first.offsets, [{ topic: "t", partition: 0, offset: "5" }]);
  assert.deepEqual(first.records, []);
  ackOf("5", "b").done([reply]);
  const commit = ledger.take();
  assert.deepEqual(commit.offsets, [{ topic: "t", partition: 0, offset: "6" }]);
  assert.equal(commit.records.length, 2, "both pipelines' records, in the transaction that commits 6");
});

Deno.test("Ledger: a finished message's records wait until the commit point passes it, so a transaction never commits a reply without its offset", () => {
  const ledger = new Ledger();
  const ackOf = ledger.receive("t", 0, ["5", "6"], ["a"]);
  const reply = (n: string) => ({
    topic: "t.responses",
    record: { key: null, value: new TextEncoder().encode(n), headers: {} },
  });
  ackOf("6", "a").done([reply("6")]);
  const held = ledger.take();
  assert.deepEqual(held.offsets, [{ topic: "t", partition: 0, offset: "5" }]);
  assert.deepEqual(held.records, [], "5 holds 6's reply back");
  ackOf("5", "a").done([reply("5")]);
  const commit = ledger.take();
  assert.deepEqual(commit.offsets, [{ topic: "t", partition: 0, offset: "7" }]);
  assert.deepEqual(commit.records.map((r) => new TextDecoder().decode(r.record.value)).sort(), ["5", "6"]);
  // Across an assignment change: what lies above the commit point is dropped with its message.
  const next = ledger.receive("t", 0, ["7", "8"], ["a"]);
  next("8", "a").done([reply("8")]);
  assert.deepEqual(ledger.assignmentChanged().records, [], "8 is delivered again, so its reply must not be committed");
});

Deno.test("Ledger: an assignment change returns what is finished and makes the rest's acks stale", () => {
  const forgotten: string[] = [];
  const ledger = new Ledger({ forgetTask: (key) => forgotten.push(key) });
  const ackOf = ledger.receive("t", 0, ["0", "1"], ["a"]);
  const late = ackOf("1", "a");
  ackOf("0", "a").done([], "task-0");
  const finished = ledger.assignmentChanged();
  assert.deepEqual(finished.offsets, [{ topic: "t", partition: 0, offset: "1" }]);
  assert.equal(late.stale, true);
  assert.equal(late.split(1), undefined, "a stale job is not split");
  late.done(); // ignored: Kafka delivers offset 1 again
  assert.equal(ledger.pending, 0);
  assert.equal(ledger.inFlight("a"), 0);
  assert.deepEqual(forgotten, [], "a task is forgotten only once its offset is committed");
  ledger.committed(finished);
  assert.deepEqual(forgotten, ["task-0"]);
});

Deno.test("Ledger.idle() ends at once when its signal aborts", async () => {
  const ledger = new Ledger();
  ledger.receive("t", 0, ["0"], ["a"]);
  const stop = new AbortController();
  const wait = ledger.idle(stop.signal);
  stop.abort();
  await wait;
});

Deno.test("Ledger: what waits behind a commit point is counted in bytes, per partition, until the point passes it", () => {
  const ledger = new Ledger();
  const ackOf = ledger.receive("t", 0, ["5", "6", "7"], ["a"]);
  const other = ledger.receive("t", 1, ["0"], ["a"]);
  const reply = { topic: "t.responses", record: { key: null, value: new Uint8Array(1000), headers: {} } };
  ackOf("6", "a").done([reply]);
  ackOf("7", "a").done([reply]);
  other("0", "a").done([reply]);
  const held = ledger.uncommittedBytes;
  assert.ok(held > 3000 && held < 3200 + 2 * FINISHED_MESSAGE_BYTES, `three replies and two offsets: ${held}`);
  const holdings = ledger.holdings().sort((a, b) => a.partition - b.partition);
  assert.deepEqual(holdings.map(({ partition, head }) => ({ partition, head })), [
    { partition: 0, head: "5" },
    { partition: 1, head: undefined },
  ]);
  assert.ok(holdings[0].bytes > 2000 + 2 * FINISHED_MESSAGE_BYTES - 1 && holdings[1].bytes > 1000);
  ledger.take();
  assert.deepEqual(ledger.holdings().map((h) => h.partition), [0], "partition 1's commit took its reply");
  ackOf("5", "a").done();
  ledger.take();
  assert.equal(ledger.uncommittedBytes, 0, "5 finished: the point passed everything");
  // At-least-once nothing is staged, but the finished offsets behind a stuck one still count.
  const more = ledger.receive("t", 0, ["8", "9", "10"], ["a"]);
  more("9", "a").done();
  more("10", "a").done();
  assert.equal(ledger.uncommittedBytes, 2 * FINISHED_MESSAGE_BYTES);
  ledger.assignmentChanged();
  assert.equal(ledger.uncommittedBytes, 0);
});

Deno.test("Ledger (at-least-once): messages finished behind an unfinished one are not handled again when delivered again", () => {
  const ledger = new Ledger({ rememberFinished: true });
  const ackOf = ledger.receive("t", 0, ["5", "6", "7"], ["a"]);
  ackOf("6", "a").done();
  ackOf("7", "a").done();
  const finished = ledger.assignmentChanged();
  assert.deepEqual(finished.offsets, [{ topic: "t", partition: 0, offset: "5" }], "5 holds the point");
  ledger.committed(finished);
  ledger.owned([{ topic: "t", partition: 0 }, { topic: "t", partition: 1 }]);
  // Kafka delivers 5, 6 and 7 again: only 5 is handled.
  assert.deepEqual(ledger.unfinished("t", 0, ["5", "6", "7", "8"]), ["5", "8"]);
  const again = ledger.receive("t", 0, ["5", "8"], ["a"]);
  again("5", "a").done();
  again("8", "a").done();
  const commit = ledger.take();
  assert.deepEqual(commit.offsets, [{ topic: "t", partition: 0, offset: "9" }]);
  ledger.committed(commit);
  assert.deepEqual(ledger.unfinished("t", 0, ["6"]), ["6"], "forgotten once committed past");
  // Not remembered for a partition no longer owned, nor with exactly-once (records only staged).
  const other = new Ledger();
  other.receive("t", 0, ["1", "2"], ["a"])("2", "a").done();
  other.assignmentChanged();
  assert.deepEqual(other.unfinished("t", 0, ["1", "2"]), ["1", "2"]);
});

Deno.test("UncommittedBudget: at the budget, partitions holding an even share pause; each resumes under half its share", () => {
  const events: string[] = [];
  const budget = new UncommittedBudget({
    budget: 1000,
    onPause: ({ partition }, share) => events.push(`pause ${partition} at ${share}`),
    onResume: ({ partition }) => events.push(`resume ${partition}`),
  });
  const holding = (partition: number, bytes: number, head: string | undefined = "0") => ({
    topic: "t",
    partition,
    head,
    bytes,
  });
  budget.check(999, () => {
    throw new Error("under the budget with nothing paused, holdings are not read");
  });
  // Partition 0 is stuck; 1 flows (holds a little); 2 holds more but its commit drains it.
  budget.check(1300, [holding(0, 900), holding(1, 100), holding(2, 300, undefined)]);
  assert.deepEqual(events, ["pause 0 at 333.3333333333333"]);
  // Still stuck: partition 1 keeps flowing however full the budget stays.
  budget.check(1100, [holding(0, 1000), holding(1, 100)]);
  assert.equal(events.length, 1);
  budget.check(300, [holding(0, 200), holding(1, 100)]);
  assert.equal(events.length, 1, "above half its share: still paused");
  budget.check(100, [holding(0, 100)]);
  assert.deepEqual(events.at(-1), "resume 0");
});

Deno.test("parseByteSize reads bytes, decimal and binary units, and refuses anything else", () => {
  assert.equal(parseByteSize("64MiB"), 64 * 2 ** 20);
  assert.equal(parseByteSize("1.5 kb"), 1500);
  assert.equal(parseByteSize("2048"), 2048);
  assert.equal(parseByteSize("1GiB"), 2 ** 30);
  for (const bad of ["", "MiB", "-1MiB", "1 TiB", "one"]) assert.equal(parseByteSize(bad), undefined, bad);
});

Deno.test("FlowControl pauses a partition alone: the other partitions of its topic flow", () => {
  const applied: string[][] = [];
  const flow = new FlowControl({
    topicsOf: (reason) => reason.kind === "held" ? [partitionId(reason.topic, reason.partition)] : ["a"],
    apply: (paused) => applied.push([...paused]),
  });
  flow.set({ kind: "held", topic: "a", partition: 1 }, true);
  assert.equal(flow.paused("a", 1), true);
  assert.equal(flow.paused("a", 0), false);
  assert.equal(flow.paused("a"), false, "the topic as a whole is not paused");
  flow.set({ kind: "circuit", key: "agent x" }, true);
  assert.equal(flow.paused("a", 0), true, "its topic's pause covers every partition");
});

Deno.test("FlowControl pauses only the topics a reason covers, and caps pause at the cap and resume at half", () => {
  const applied: string[][] = [];
  const topicsOf = (reason: PauseReason) =>
    reason.kind === "in-flight"
      ? ["a", "b"]
      : reason.kind === "circuit"
      ? ["a"]
      : reason.kind === "pipeline"
      ? ["b"]
      : [];
  const flow = new FlowControl({ topicsOf, apply: (paused) => applied.push([...paused].sort()) });
  const x = { kind: "circuit", key: "agent x" } as const;
  const b = { kind: "pipeline", pipeline: "b" } as const;
  flow.set(x, true);
  assert.deepEqual(applied, [["a"]]);
  assert.equal(flow.paused("b"), false, "another agent's topic flows");
  assert.equal(flow.cap(b, 10, 10), true);
  assert.equal(flow.cap(b, 6, 10), false, "above half: still paused");
  assert.equal(flow.paused("b"), true);
  assert.equal(flow.holds(b), true);
  flow.cap(b, 5, 10);
  assert.equal(flow.paused("b"), false);
  flow.set(x, false);
  assert.deepEqual(applied.at(-1), []);
});

Deno.test("a throw inside a stage fails that job as 'internal', with the error, and the next job goes on", async () => {
  const boom = perJob("transform", (j) => {
    if (j.ctx.offset === "1") throw new TypeError("cannot read properties of null");
    j.text = "fine";
  });
  const jobs = await collect(boom(from([job(simple, record("{}", { offset: "1" })), job(simple, record("{}"))])));
  assert.equal(jobs[0].failure?.class, "internal");
  assert.equal(jobs[0].failure?.stage, "transform");
  assert.match(jobs[0].failure!.message, /cannot read properties of null/);
  assert.equal(jobs[1].text, "fine");
  const headers = dlqRecord(jobs[0]).headers;
  assert.equal(headers["x-error-class"], "internal");
});

Deno.test("a header without a value (null) does not stop dispatch: the text view leaves it out, the DLQ keeps its name", async () => {
  const r = { ...record('{"a":1}'), headers: { trace: null, kind: new TextEncoder().encode("k"), many: [null, null] } };
  const batch: Batch = { topic: r.topic, partition: 0, records: [r] };
  const [j] = await collect(dispatch(from([batch]), [simple]));
  assert.deepEqual(j.ctx.headers, { kind: "k" });
  j.failure = failure("decode", "permanent", "x");
  const out = dlqRecord(j);
  assert.equal(out.headers["x-null-headers"], "trace,many");
  assert.deepEqual(out.headers.trace, new Uint8Array());
});

Deno.test("a record whose timestamp is no time still becomes a job", () => {
  const ctx = contextFor(simple, { ...record("{}"), timestamp: "not a time" });
  assert.equal(ctx.timestamp, "not a time");
});

Deno.test("context: key derives the contextId from the key's bytes: two binary keys never share one", () => {
  const p = pipeline(
    "name: c\nsource: {topics: [t]}\nroutes: [{name: r, invoke: {prompt_id: x, context: key}}]\n",
  );
  const ids = [[0xff, 0x01], [0xfe, 0x01]].map((bytes) => {
    const j = job(p, { ...record("{}", { topic: "t" }), key: new Uint8Array(bytes) });
    decodeJob(j);
    matchJob(j);
    assert.equal(j.ctx.key, "\ufffd\u0001", "both keys read the same as text");
    return new Conversations().contextFor(talkOf(j, "http://agent/v1/a2a/x")!);
  });
  assert.notEqual(ids[0], ids[1]);
  const text = job(p, record("{}", { topic: "t", key: "K-1" }));
  matchJob(text);
  assert.ok(talkOf(text, "http://agent/v1/a2a/x"), "a text key has a context too");
});

Deno.test("conversations: derived ids unless the agent mints them; a refused derived id makes it mint from then on", async () => {
  const conversations = new Conversations();
  const sdk = { pipeline: "p", key: "alice", url: "http://agent:8080/a2a/echo" };
  const archestra = { pipeline: "p", key: "alice", url: "https://archestra.example/v2/a2a/4f0c" };
  const derived = conversations.contextFor(sdk);
  assert.ok(derived, "an agent that takes our ids gets the derived one");
  await conversations.replied(sdk, "something-else");
  assert.equal(conversations.contextFor(sdk), derived, "what such an agent answers does not change it");
  assert.equal(conversations.contextFor(archestra), undefined, "Archestra's /v2 mints: the first message has none");
  await conversations.replied(archestra, "minted-1");
  assert.equal(conversations.contextFor(archestra), "minted-1");
  assert.equal(conversations.contextFor({ ...archestra, key: "bob" }), undefined, "another key has its own");
  // An agent that refuses the id we derived ("Context not found") mints from then on.
  conversations.lost(sdk);
  assert.equal(conversations.contextFor(sdk), undefined);
  await conversations.replied(sdk, "minted-2");
  assert.equal(conversations.contextFor(sdk), "minted-2");
  conversations.lost(archestra);
  assert.equal(conversations.contextFor(archestra), undefined, "a lost conversation starts anew");
});

Deno.test("an untemplated route renders a value 6,000 levels deep (as compact JSON) instead of dying", () => {
  const deep = "[".repeat(6_000) + "]".repeat(6_000);
  const p = pipeline("name: d\nsource: {topics: [t]}\nroutes: [{name: r, invoke: {prompt_id: x}}]\n");
  const j = job(p, record(deep, { topic: "t" }));
  decodeJob(j);
  matchJob(j);
  transformJob(j);
  assert.equal(j.failure, undefined);
  assert.equal(j.text, deep);
});

Deno.test("a DLQ record over its topic's limit goes out with its value cut; refused even then, it is 'dropped'", async () => {
  const tooLarge = Object.assign(new Error("too large"), { type: "MESSAGE_TOO_LARGE" });
  const big = job(simple, record("x".repeat(700_000)));
  big.failure = failure("decode", "permanent", "not JSON");
  const sent: { size: number; truncated?: unknown }[] = [];
  const limit = (max: number) => ({
    send: (_topic: string, out: { value: Uint8Array; headers: Record<string, unknown> }) => {
      sent.push({ size: out.value.length, truncated: out.headers["x-value-truncated"] });
      return out.value.length > max ? Promise.reject(tooLarge) : Promise.resolve();
    },
    isPermanent: () => true,
    isTooLarge: () => true,
  });
  assert.equal((await publishJob(big, limit(100_000))).outcome, "dead-lettered");
  assert.deepEqual(sent.at(-1), { size: 64 * 1024, truncated: "700000" });
  sent.length = 0;
  const headersTooLarge = { ...limit(-1) };
  assert.equal((await publishJob(big, headersTooLarge)).outcome, "dropped");
  assert.equal(sent.at(-1)?.size, 0, "the last try sends no value at all");
});

Deno.test("Commits: the offsets of a failed commit are carried into the next, even after the ledger forgot them", async () => {
  const ledger = new Ledger();
  let fail = true;
  const stored: string[][] = [];
  const commits = new Commits({
    ledger,
    write: ({ offsets }) => {
      if (fail) return Promise.reject(new Error("kafkajs skipped the commit"));
      stored.push(offsets.map((o) => `${o.partition}@${o.offset}`));
      return Promise.resolve();
    },
    fatal: () => assert.fail("an offset commit is never fatal"),
  });
  ledger.receive("t", 0, ["0"], ["a"])("0", "a").done();
  await commits.these(ledger.assignmentChanged()); // fails: the runner was restarting
  fail = false;
  ledger.receive("t", 1, ["4"], ["a"])("4", "a").done();
  await commits.now();
  assert.deepEqual(stored, [["0@1", "1@5"]]);
});

Deno.test("Commits: an offset carried for a partition no longer owned (revoked, or its topic deleted) is dropped, so later commits go through", async () => {
  const ledger = new Ledger();
  const stored: string[][] = [];
  // The broker refuses any commit that holds partition 1 (deleted, or now another member's).
  const commits = new Commits({
    ledger,
    write: ({ offsets }) => {
      if (offsets.some((o) => o.partition === 1)) return Promise.reject(new Error("UNKNOWN_TOPIC_OR_PARTITION"));
      stored.push(offsets.map((o) => `${o.partition}@${o.offset}`));
      return Promise.resolve();
    },
    fatal: () => assert.fail("an offset commit is never fatal"),
  });
  ledger.receive("t", 1, ["0"], ["a"])("0", "a").done();
  await commits.these(ledger.assignmentChanged()); // fails, and carries 1@1
  await commits.owned([{ topic: "t", partition: 0 }]);
  ledger.receive("t", 0, ["4"], ["a"])("4", "a").done();
  await commits.now();
  assert.deepEqual(stored, [["0@5"]], "partition 0's commit, without the carried offset of partition 1");
});

Deno.test("a transaction's records go out in sends that each fit the topic's limit", () => {
  const record = { key: null, value: new Uint8Array(400_000), headers: { "x-pipeline": "p" } };
  const chunks = fitting(Array(5).fill(record), 1_048_588);
  assert.deepEqual(chunks.map((chunk) => chunk.length), [2, 2, 1]);
  for (const chunk of chunks) assert.ok(batchBytes(chunk) <= 1_048_588);
});
