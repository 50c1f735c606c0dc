import assert from "node:assert/strict";
import PQueue from "p-queue";
import { Channel } from "../../src/util/channel.ts";
import { mapConcurrent } from "../../src/util/concurrent.ts";
import { parseDuration } from "../../src/util/duration.ts";
import { globToRegExp, topicMatches } from "../../src/util/glob.ts";
import { parseTemplate, renderTemplate } from "../../src/template.ts";
import { outputTopicTest, resolveTopics } from "../../src/kafka/topics.ts";
import { pipeline } from "./helpers.ts";

Deno.test("globs match within a segment with * and across segments with **", () => {
  assert.ok(topicMatches("orders.*", "orders.events"));
  assert.ok(!topicMatches("orders.*", "orders."));
  assert.ok(!topicMatches("orders.*", "orders.events.responses"));
  assert.ok(!topicMatches("orders.*", "ordersXevents"), "the dot is literal");
  assert.ok(topicMatches("orders.**", "orders.eu.events"));
  assert.ok(topicMatches("customer.events", "customer.events"));
  assert.ok(!topicMatches("customer.events", "customerXevents"));
  assert.equal(globToRegExp("a+b.*").source, "^a\\+b\\.[^.]+$");
});

Deno.test("resolveTopics() leaves out outputs and internal topics from globs, not from exact names", () => {
  const p = pipeline(`name: o\nsource: {topics: ["orders.**"]}\nroutes: [{name: r, invoke: {prompt_id: p}}]`);
  const isOutput = outputTopicTest([p]);
  const existing = [
    "orders.events",
    "orders.events.responses",
    "orders.events.dlq",
    "orders.eu.x",
    "__consumer_offsets",
  ];
  assert.deepEqual(resolveTopics(["orders.**", "x.responses", "gone"], [...existing, "x.responses"], isOutput), {
    topics: ["orders.eu.x", "orders.events", "x.responses"],
    missing: ["gone"],
  });
});

Deno.test("parseDuration() reads units and bare seconds", () => {
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1.0"), 1000);
  assert.equal(parseDuration(3), 3000);
  assert.equal(parseDuration("soon"), undefined);
  assert.equal(parseDuration(-1), undefined);
});

Deno.test("templates: placeholders, escaped braces and syntax errors", () => {
  const t = parseTemplate("{{literal}} {a.b} {$topic}");
  assert.ok(!("error" in t));
  const values: Record<string, string> = { "a.b": "X" };
  assert.deepEqual(renderTemplate(t, (path) => values[path]), { text: "{literal} X ", missing: ["$topic"] });
  assert.deepEqual(parseTemplate("a } b"), { error: 'unmatched "}" at character 3 (write "}}" for a literal brace)' });
  assert.deepEqual(parseTemplate("{a b}"), { error: '"{a b}" at character 1 is not a field path' });
});

Deno.test("Channel applies backpressure and ends after close", async () => {
  const channel = new Channel<number>(1);
  await channel.send(1);
  let secondSent = false;
  const second = channel.send(2).then((ok) => secondSent = ok);
  await Promise.resolve();
  assert.equal(secondSent, false, "full: the sender waits");
  const iterator = channel[Symbol.asyncIterator]();
  assert.deepEqual(await iterator.next(), { value: 1, done: false });
  await second;
  assert.equal(secondSent, true);
  channel.close();
  assert.deepEqual(await iterator.next(), { value: 2, done: false });
  assert.equal((await iterator.next()).done, true);
  assert.equal(await channel.send(3), false, "closed: refused");
});

Deno.test("Channel.fail() reaches the reader after buffered items", async () => {
  const channel = new Channel<number>();
  await channel.send(1);
  channel.fail(new Error("boom"));
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const n of channel) seen.push(n);
  }, /boom/);
  assert.deepEqual(seen, [1]);
});

Deno.test("mapConcurrent() runs up to the queue's limit at once and yields in completion order", async () => {
  const queue = new PQueue({ concurrency: 2 });
  let running = 0;
  let peak = 0;
  const gates = new Map<number, PromiseWithResolvers<void>>();
  async function* input() {
    for (const n of [1, 2, 3]) {
      gates.set(n, Promise.withResolvers());
      yield n;
    }
  }
  const twoRunning = Promise.withResolvers<void>();
  const results = mapConcurrent(input(), async (n) => {
    running++;
    peak = Math.max(peak, running);
    if (running === 2) twoRunning.resolve();
    await gates.get(n)!.promise;
    running--;
    return n;
  }, () => queue);
  const iterator = results[Symbol.asyncIterator]();
  const first = iterator.next();
  await twoRunning.promise;
  assert.equal(running, 2);
  gates.get(2)!.resolve();
  assert.deepEqual(await first, { value: 2, done: false });
  gates.get(1)!.resolve();
  gates.get(3)!.resolve();
  assert.deepEqual([(await iterator.next()).value, (await iterator.next()).value].sort(), [1, 3]);
  assert.equal((await iterator.next()).done, true);
  assert.equal(peak, 2);
});
