import assert from "node:assert/strict";
import { OffsetTracker } from "../../src/delivery/offsets.ts";

Deno.test("OffsetTracker commits up to the lowest offset still pending", () => {
  const tracker = new OffsetTracker();
  for (const offset of ["10", "11", "12"]) tracker.register("t", 0, offset, 1);
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "10" }]);
  tracker.done("t", 0, "12");
  tracker.done("t", 0, "11");
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "10" }], "10 holds the point back");
  tracker.done("t", 0, "10");
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "13" }]);
  assert.equal(tracker.pending, 0);
});

Deno.test("OffsetTracker reports a partition only when its point moved since the last commit", () => {
  const tracker = new OffsetTracker();
  tracker.register("t", 1, "0", 1);
  tracker.done("t", 1, "0");
  const first = tracker.committable();
  tracker.markCommitted(first);
  assert.deepEqual(tracker.committable(), []);
  tracker.register("t", 1, "1", 0);
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 1, offset: "2" }], "no outcomes: done at once");
});

Deno.test("OffsetTracker waits for every pipeline's outcome of a message", () => {
  const tracker = new OffsetTracker();
  tracker.register("t", 0, "5", 2);
  tracker.done("t", 0, "5");
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "5" }]);
  tracker.done("t", 0, "5");
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "6" }]);
  assert.throws(() => tracker.done("t", 0, "5"), /was not registered/);
});

Deno.test("OffsetTracker keeps the point below a redelivered offset until it is done again", () => {
  const tracker = new OffsetTracker();
  for (const offset of ["0", "1", "2"]) tracker.register("t", 0, offset, 1);
  tracker.done("t", 0, "0");
  tracker.done("t", 0, "1");
  tracker.done("t", 0, "2");
  tracker.register("t", 0, "1", 1); // seen again after a rebalance
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "1" }]);
  tracker.done("t", 0, "1");
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "3" }]);
});

Deno.test("OffsetTracker.idle() resolves when the last pending message finishes", async () => {
  const tracker = new OffsetTracker();
  await tracker.idle();
  tracker.register("t", 0, "0", 1);
  let idle = false;
  const waiting = tracker.idle().then(() => idle = true);
  await Promise.resolve();
  assert.equal(idle, false);
  tracker.done("t", 0, "0");
  await waiting;
  assert.equal(idle, true);
});

Deno.test("OffsetTracker handles offsets beyond 2^53 exactly", () => {
  const tracker = new OffsetTracker();
  tracker.register("t", 0, "9007199254740993", 1);
  tracker.done("t", 0, "9007199254740993");
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "9007199254740994" }]);
});

Deno.test("OffsetTracker.reset() forgets unfinished work and starts a new generation", () => {
  const tracker = new OffsetTracker();
  tracker.register("t", 0, "0", 1);
  tracker.register("t", 0, "1", 1);
  tracker.done("t", 0, "0");
  const before = tracker.generation;
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "1" }]);
  tracker.reset();
  assert.equal(tracker.generation, before + 1);
  assert.equal(tracker.pending, 0);
  assert.deepEqual(tracker.committable(), []);
  tracker.register("t", 0, "1", 1);
  assert.deepEqual(tracker.committable(), [{ topic: "t", partition: 0, offset: "1" }]);
});
