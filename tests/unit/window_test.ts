/** Windows, in one process: forming, closing, rendering, settling and writing them. */
import assert from "node:assert/strict";
import { parsePipelineText } from "../../src/config/load_pipelines.ts";
import { contextFor } from "../../src/dispatch.ts";
import { Ledger, unledgered } from "../../src/delivery/ledger.ts";
import type { Ack } from "../../src/model.ts";
import type { Job, Pipeline } from "../../src/model.ts";
import { exampleProblems } from "../../src/pipeline_examples.ts";
import { decode } from "../../src/stages/decode.ts";
import { match } from "../../src/stages/match.ts";
import { type OutRecord, publishJob, replyEnvelope } from "../../src/stages/publish.ts";
import { transform, transformWindow } from "../../src/stages/transform.ts";
import { window, windowJob } from "../../src/stages/window.ts";
import { fanOut } from "../../src/stages/fan_out.ts";
import { Channel } from "../../src/util/channel.ts";
import { collect, from, pipeline, record } from "./helpers.ts";

const text = (bytes: Uint8Array | Uint8Array[] | string | null) =>
  bytes === null ? null : typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes as Uint8Array);

function windowed(window: string, transform = "", extra = ""): Pipeline {
  return pipeline(`
name: metrics
source: { topics: [m] }
routes:
  - name: trends
    window: ${window}
    transform: { ${transform} }
    invoke: { prompt_id: p }
  - name: other
    invoke: { prompt_id: q }
${extra}`);
}

/** An event of `p` at `offset`, acked in `ledger` when one is given. */
function event(
  p: Pipeline,
  offset: number,
  { key = "cpu", partition = 0, value = `{"n":${offset}}`, headers = {}, ledger = undefined as Ledger | undefined } =
    {},
): Job {
  const r = record(value, { topic: "m", partition, offset: String(offset), key, headers });
  const ack: Ack = ledger ? ledger.receive("m", partition, [r.offset], [p.name])(r.offset, p.name) : unledgered;
  return { record: r, ctx: contextFor(p, r), pipeline: p, ack };
}

const stage = (jobs: Job[]) => window(match(decode(from(jobs))));
const offsets = (job: Job) => job.window!.members.map((m) => m.ctx.offset);

Deno.test("a window closes at max_events; interleaved keys never mix; other routes flow past", async () => {
  const p = windowed("{ size: 1h, max_events: 3 }");
  const jobs = [
    event(p, 0, { key: "cpu" }),
    event(p, 1, { key: "mem" }),
    event(p, 2, { key: "cpu" }),
    event(p, 3, { key: "mem" }),
    event(p, 4, { key: "cpu" }),
    event(p, 5, { key: "mem" }),
    event(p, 6, { key: "cpu" }),
  ];
  const out = await collect(stage(jobs));
  const windows = out.filter((job) => job.window);
  assert.deepEqual(windows.map((w) => [w.ctx.key, offsets(w)]), [["cpu", ["0", "2", "4"]], ["mem", ["1", "3", "5"]]]);
  // The input ended (a stop) with cpu's fourth event in an open window: left uncommitted.
  const left = out.filter((job) => !job.window);
  assert.deepEqual(left.map((job) => [job.ctx.offset, job.abandoned]), [["6", true]]);
});

Deno.test("windows by partition take every key of one partition, and never span partitions", async () => {
  const p = windowed("{ by: partition, size: 1h, max_events: 2 }");
  const out = await collect(stage([
    event(p, 0, { key: "cpu", partition: 0 }),
    event(p, 0, { key: "cpu", partition: 1 }),
    event(p, 1, { key: "mem", partition: 0 }),
    event(p, 1, { key: "mem", partition: 1 }),
  ]));
  assert.deepEqual(out.map((w) => [w.ctx.partition, w.ctx.key, offsets(w)]), [
    [0, "0", ["0", "1"]],
    [1, "1", ["0", "1"]],
  ]);
  assert.equal(text(out[1].record.key), "1", "keyed by the window key");
});

Deno.test("a window closes after its size while its key gets no more events", async () => {
  const p = windowed("{ size: 50ms, max_events: 100 }");
  const input = new Channel<Job>();
  const output = window(match(decode(input)))[Symbol.asyncIterator]();
  const opened = Date.now();
  await input.send(event(p, 0));
  await input.send(event(p, 1));
  const { value: closed } = await output.next();
  assert.deepEqual(offsets(closed), ["0", "1"]);
  assert.ok(Date.now() - opened >= 45, "not before its size");
  const { start, end } = closed.window!;
  assert.ok(Date.parse(end) - Date.parse(start) >= 45);
  input.close();
  assert.equal((await output.next()).done, true);
});

Deno.test("the window text: each event by transform.each, then the template with $count, $key and the times", () => {
  const p = windowed(
    "{ size: 1m, max_events: 10 }",
    'each: "{$offset}: {n}", template: "{$count} events of {$key} from {$window.start}:\\n{$events}"',
  );
  const jobs = [0, 1].map((n) => event(p, n));
  jobs.forEach((job) => Object.assign(job, { value: { n: job.ctx.offset }, route: p.routes[0] }));
  const [job] = transformWindow(windowJob(jobs, new Date(0), new Date(60_000)));
  assert.equal(job.text, "2 events of cpu from 1970-01-01T00:00:00.000Z:\n0: 0\n1: 1");
});

Deno.test("without templates a window's text is its events' JSON, one per line", async () => {
  const p = windowed("{ size: 1h, max_events: 2 }");
  const [job] = await collect(transform(stage([event(p, 0), event(p, 1, { value: '{"n":1,"s":"a\\nb"}' })])));
  assert.equal(job.text, '{"n":0}\n{"n":1,"s":"a\\nb"}');
});

Deno.test("an event transform.each has no value for fails alone; the window goes on with the rest", async () => {
  const ledger = new Ledger();
  const p = windowed("{ size: 1h, max_events: 3 }", 'each: "{n}"');
  const jobs = [event(p, 0, { ledger }), event(p, 1, { ledger, value: "{}" }), event(p, 2, { ledger })];
  const out = await collect(transform(stage(jobs)));
  assert.deepEqual(out.map((job) => job.window ? offsets(job) : job.ctx.offset), ["1", ["0", "2"]]);
  assert.match(out[0].failure!.message, /transform.each field missing: n/);
  assert.equal(out[1].text, "0\n2");
  // The window's ack is its remaining events': done, it leaves offset 1 pending.
  out[1].ack.done();
  assert.equal(ledger.pending, 1);
  out[0].ack.done();
  assert.deepEqual(ledger.take().offsets.map((o) => o.offset), ["3"]);
});

Deno.test("a window's ack: its events are committed together, with its records in the same commit", async () => {
  const ledger = new Ledger();
  const p = windowed("{ size: 1h, max_events: 3 }");
  const [job] = await collect(stage([0, 1, 2].map((n) => event(p, n, { ledger }))));
  const [copy] = job.ack.split(1)!; // fanned out to two agents
  const reply = { topic: "m.responses", record: { key: null, value: new Uint8Array(), headers: {} } };
  job.ack.done([reply]);
  assert.deepEqual(ledger.take().offsets.map((o) => o.offset), ["0"], "the other agent's reply is still to come");
  copy.done([reply]);
  const commit = ledger.take();
  assert.deepEqual(commit.offsets.map((o) => o.offset), ["3"]);
  assert.equal(commit.parts[0].records.length, 2, "both replies, in the commit of the window's offsets");
});

Deno.test("a window whose events went stale (the assignment changed) is dropped, not sent", async () => {
  const ledger = new Ledger();
  const p = windowed("{ size: 1h, max_events: 2 }");
  const input = new Channel<Job>();
  const output = window(match(decode(input)))[Symbol.asyncIterator]();
  await input.send(event(p, 0, { ledger }));
  ledger.assignmentChanged();
  await input.send(event(p, 0, { ledger })); // delivered again
  const { value: dropped } = await output.next();
  assert.equal(dropped.abandoned, true);
  await input.send(event(p, 1, { ledger }));
  const { value: formed } = await output.next();
  assert.deepEqual(offsets(formed), ["0", "1"]);
  assert.equal(formed.ack.stale, false);
  input.close();
});

Deno.test("with its cap full, a pipeline's oldest windows close until they hold less than half of it", async () => {
  const ledger = new Ledger();
  const p = windowed("{ size: 1h, max_events: 100 }");
  const cap = 4;
  const crowded = (name: string, held: number) => ledger.inFlight(name) >= cap && 2 * held >= cap;
  const events = ["a", "b", "c", "d"].map((key, n) => event(p, n, { key, ledger }));
  const out = await collect(window(match(decode(from(events))), { crowded }));
  assert.deepEqual(out.filter((job) => job.window).map(offsets), [["0"], ["1"], ["2"]], "the oldest first");
  // Their replies settle them: the pipeline is below half its cap, so its topics resume (no stall).
  out.filter((job) => job.window).forEach((job) => job.ack.done());
  assert.ok(ledger.inFlight(p.name) < cap / 2);
});

Deno.test("a window that holds back too many finished messages of its partition closes early", async () => {
  const ledger = new Ledger();
  const p = pipeline(`
name: metrics
source: { topics: [m] }
routes:
  - { name: trends, match: { fields: { kind: reading } }, window: { size: 2s }, invoke: { prompt_id: p } }
  - { name: clicks, invoke: { prompt_id: q } }
`);
  const pinned = (topic: string, partition: number) => {
    const { head, finished } = ledger.behind(topic, partition);
    return finished >= 3 ? head : undefined;
  };
  const input = new Channel<Job>();
  const output = window(match(decode(input)), { pinned })[Symbol.asyncIterator]();
  const label = (job: Job) => job.window ? `window ${offsets(job)}` : job.ctx.offset;
  await input.send(event(p, 0, { key: "quiet", ledger, value: '{"kind":"reading"}' }));
  const seen: string[] = [];
  for (let n = 1; n <= 4; n++) {
    const click = event(p, n, { key: "busy", ledger, value: '{"kind":"click"}' });
    click.ack.done(); // answered at once: its offset waits for offset 0's
    await input.send(click);
    seen.push(label((await output.next()).value));
  }
  seen.push(label((await output.next()).value));
  assert.deepEqual(seen, ["1", "2", "3", "window 0", "4"], "closed once 3 finished messages waited on it");
  input.close();
});

Deno.test("a failed window puts each event in the DLQ with its own bytes and the window's error", async () => {
  const p = windowed("{ size: 1h, max_events: 2 }");
  const jobs = [event(p, 4, { value: '{"n":4}' }), event(p, 9, { value: '{"n":9}', headers: { "x-mine": "yes" } })];
  const [job] = await collect(transform(stage(jobs)));
  job.failure = { stage: "invoke", class: "permanent", message: "the agent said no", attempts: 1 };
  const sent: { topic: string; record: OutRecord }[] = [];
  const result = await publishJob(job, {
    send: (topic, out) => (sent.push({ topic, record: out }), Promise.resolve()),
  });
  assert.equal(result.outcome, "dead-lettered");
  assert.deepEqual(sent.map((s) => [s.topic, text(s.record.value), s.record.headers["x-source-offset"]]), [
    ["m.dlq", '{"n":4}', "4"],
    ["m.dlq", '{"n":9}', "9"],
  ]);
  for (const { record } of sent) {
    assert.equal(record.headers["x-error-message"], "the agent said no");
    assert.equal(record.headers["x-window-events"], "0@4..9");
    assert.equal(record.headers["x-window-count"], "2");
    assert.equal(text(record.key), "cpu");
  }
  assert.equal(text(sent[1].record.headers["x-mine"] as Uint8Array), "yes");
});

Deno.test("fanned out, a failed window's copy dead-letters its events; the other copy's reply is its own", async () => {
  const p = pipeline(`
name: metrics
source: { topics: [m] }
routes: [{ name: trends, window: { size: 1h, max_events: 2 }, invoke: { prompt_id: [a, b] } }]
`);
  const [a, b] = await collect(fanOut(transform(stage([event(p, 0), event(p, 1)]))));
  a.failure = { stage: "invoke", class: "permanent", message: "a said no", attempts: 1 };
  b.reply = { text: "ok", parts: [], taskId: null, contextId: null, attempts: 1, latencyMs: 5, url: "http://b" };
  const send = () => Promise.resolve();
  assert.equal((await publishJob(a, { send })).outcome, "dead-lettered");
  assert.equal((await publishJob(b, { send })).outcome, "replied");
  assert.deepEqual(a.eventOutcomes?.map((e) => [e.job.ctx.offset, e.job.agent?.promptId, e.outcome]), [
    ["0", "a", "dead-lettered"],
    ["1", "a", "dead-lettered"],
  ]);
  assert.equal(b.eventOutcomes, undefined, "copies share their window, not their outcomes");
});

Deno.test("a window's reply envelope says where its events were", async () => {
  const p = windowed("{ size: 1h, max_events: 2 }");
  const [job] = await collect(transform(stage([event(p, 4), event(p, 9)])));
  job.reply = { text: "ok", parts: [], taskId: null, contextId: null, attempts: 1, latencyMs: 5, url: "http://a" };
  const envelope = replyEnvelope(job);
  assert.deepEqual(envelope.window, {
    start: job.window!.start,
    end: job.window!.end,
    count: 2,
    first: { partition: 0, offset: "4" },
    last: { partition: 0, offset: "9" },
  });
  assert.deepEqual(envelope.source, { ...envelope.source as object, offset: "4", key: "cpu" });
});

Deno.test("window settings and window placeholders are checked, each naming its field", () => {
  const problems = (yaml: string) => parsePipelineText("w.yaml", yaml, {}, { maxRetries: 1, retryDelayMs: 1 }).problems;
  const base = "name: w\nsource: {topics: [m]}\n";
  assert.deepEqual(
    problems(base + 'routes: [{name: r, transform: {template: "{$events}", each: "{n}"}, invoke: {prompt_id: p}}]'),
    [
      "w.yaml:routes[0].transform.template: {$events} is there only for a route with a window",
      "w.yaml:routes[0].transform.each: each is for a route with a window",
    ],
  );
  assert.deepEqual(
    problems(base + 'routes: [{name: r, window: {size: 0}, transform: {each: "{$count}"}, invoke: {prompt_id: p}}]'),
    [
      "w.yaml:routes[0].window.size: must be more than 0 and at most 24h",
      "w.yaml:routes[0].transform.each: {$count} is the window's: each renders one event (use it in transform.template)",
    ],
  );
  assert.deepEqual(
    problems(base + "routes: [{name: r, window: {size: 1m, max_events: 50, by: topic}, invoke: {prompt_id: p}}]"),
    ['w.yaml:routes[0].window.by: Invalid option: expected one of "key"|"partition"'],
  );
  assert.deepEqual(
    problems(
      base + "routes: [{name: r, window: {size: 1m, max_events: 50}, invoke: {prompt_id: p}}]\n" +
        "delivery: {max_in_flight: 20}",
    ),
    ["w.yaml:routes[0].window.max_events: 50 is more than delivery.max_in_flight (20): a window could never fill"],
  );
  assert.deepEqual(
    problems(base + "routes: [{name: r, window: {size: 1m}, invoke: {prompt_id: p, long_running: true}}]"),
    [
      "w.yaml:routes[0].invoke.long_running: not with a window: a window formed again after a restart may hold other events, so its task could not be resumed",
    ],
  );
});

Deno.test("an example of a windowed route gives its window's events and the text they make", async () => {
  const yaml = (text: string) => `
name: w
source: { topics: [m] }
routes:
  - name: r
    window: { size: 1m }
    transform: { each: "{v}", template: "{$key} x{$count} at {$window.end}: {$events}" }
    invoke: { prompt_id: p }
examples:
  - key: cpu
    events: [{ v: 1 }, { v: 2 }]
    expect: { route: r, text: "${text}" }
  - events: [{ v: 1 }, { w: 2 }]
    expect: { route: r, failure: transform }
`;
  const [ok] = parsePipelineText("w.yaml", yaml("cpu x2 at 1970-01-01T00:00:00.000Z: 1\\n2"), {}, {
    maxRetries: 1,
    retryDelayMs: 1,
  }).pipelines;
  assert.deepEqual(await exampleProblems(ok), []);
  const [wrong] = parsePipelineText("w.yaml", yaml("cpu x3"), {}, { maxRetries: 1, retryDelayMs: 1 }).pipelines;
  assert.deepEqual(await exampleProblems(wrong), [
    'w.yaml:examples[0].expect.text: expected "cpu x3", got "cpu x2 at 1970-01-01T00:00:00.000Z: 1\\n2"',
  ]);
});
