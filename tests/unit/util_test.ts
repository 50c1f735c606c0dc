import assert from "node:assert/strict";
import { Channel } from "../../src/util/channel.ts";
import { mapUnordered } from "../../src/util/concurrent.ts";
import { KeyedQueue } from "../../src/util/keyed_queue.ts";
import { parseDuration } from "../../src/util/duration.ts";
import { globToRegExp, topicMatches } from "../../src/util/glob.ts";
import { parseTemplate, renderTemplate } from "../../src/template.ts";
import { outputTopicTest, resolveTopics } from "../../src/kafka/topics.ts";
import { collect, from, pipeline } from "./helpers.ts";

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

Deno.test("mapUnordered() starts every item at once and yields in completion order", async () => {
  const gates = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  let started = 0;
  const allStarted = Promise.withResolvers<void>();
  const results = mapUnordered(from([0, 1]), async (n) => {
    if (++started === 2) allStarted.resolve();
    await gates[n].promise;
    return n;
  });
  const iterator = results[Symbol.asyncIterator]();
  const first = iterator.next();
  await allStarted.promise;
  gates[1].resolve();
  assert.deepEqual(await first, { value: 1, done: false });
  gates[0].resolve();
  assert.deepEqual(await iterator.next(), { value: 0, done: false });
  assert.equal((await iterator.next()).done, true);
});

Deno.test("mapUnordered() ends with the error of a failed call", async () => {
  await assert.rejects(collect(mapUnordered(from([1]), () => Promise.reject(new Error("boom")))), /boom/);
});

Deno.test("KeyedQueue runs one key in order and other keys alongside, within the limit", async () => {
  const queue = new KeyedQueue(2);
  const events: string[] = [];
  const gate = Promise.withResolvers<void>();
  const slowA = queue.add("a", async () => {
    events.push("a1 start");
    await gate.promise;
    events.push("a1 end");
  });
  const a2 = queue.add("a", () => (events.push("a2"), Promise.resolve()));
  const b1 = queue.add("b", () => (events.push("b1"), Promise.resolve()));
  await b1;
  assert.deepEqual(events, ["a1 start", "b1"], "b is not held back by a's slow call; a2 waits for a1");
  gate.resolve();
  await Promise.all([slowA, a2]);
  assert.deepEqual(events, ["a1 start", "b1", "a1 end", "a2"]);
});

Deno.test("KeyedQueue never runs more than its limit, keyed or not", async () => {
  const queue = new KeyedQueue(3);
  let running = 0;
  let peak = 0;
  const tasks = Array.from({ length: 20 }, (_, i) =>
    queue.add(i % 2 ? undefined : `k${i % 5}`, async () => {
      peak = Math.max(peak, ++running);
      await Promise.resolve();
      running--;
    }));
  await Promise.all(tasks);
  assert.equal(peak, 3);
});

Deno.test("KeyedQueue gives a slow task's slot back after detachAfterMs, up to the limit", async () => {
  const queue = new KeyedQueue(1);
  const slowGate = Promise.withResolvers<void>();
  const slow = queue.add("a", () => slowGate.promise, 10);
  // With one slot, this runs only once the slow task has detached.
  await queue.add("b", () => Promise.resolve());
  assert.equal(queue.detached, 1);
  const secondGate = Promise.withResolvers<void>();
  const second = queue.add("c", () => secondGate.promise, 10);
  let third = false;
  const thirdDone = queue.add("d", () => (third = true, Promise.resolve()));
  await new Promise((resolve) => setTimeout(resolve, 50)); // longer than detachAfterMs: the budget is full
  assert.equal(third, false, "only one task may be detached with a limit of one");
  secondGate.resolve();
  slowGate.resolve();
  await Promise.all([slow, second, thirdDone]);
  assert.equal(queue.detached, 0);
});
