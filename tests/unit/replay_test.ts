import assert from "node:assert/strict";
import { type DlqRecord, replayPlan } from "../../src/replay.ts";

const encoder = new TextEncoder();

function dead(headers: Record<string, string>, timestampMs = 1_000): DlqRecord {
  return {
    key: encoder.encode("K"),
    value: encoder.encode('{"a":1}'),
    headers: {
      "x-source-topic": "orders.events",
      "x-source-partition": "2",
      "x-source-offset": "41",
      "x-pipeline": "orders",
      "x-route": "r",
      "x-error-stage": "invoke",
      "x-error-class": "exhausted",
      "x-error-message": "HTTP 503",
      "x-error-attempts": "4",
      "x-failed-at": "2026-01-01T00:00:00.000Z",
      "x-correlation-id": "c-1",
      custom: "kept",
      ...headers,
    },
    timestampMs,
  };
}

Deno.test("replay sends the original key, bytes and headers to x-source-topic, without the DLQ's headers", () => {
  const plan = replayPlan(dead({}), { maxReplays: 3 });
  assert.ok("topic" in plan);
  assert.equal(plan.topic, "orders.events");
  assert.deepEqual(plan.record.key, encoder.encode("K"));
  assert.deepEqual(plan.record.value, encoder.encode('{"a":1}'));
  assert.deepEqual(plan.record.headers, { "x-correlation-id": "c-1", custom: "kept", "x-replay-count": "1" });
});

Deno.test("replay counts replays and leaves a record that reached --max-replays", () => {
  const again = replayPlan(dead({ "x-replay-count": "2" }), { maxReplays: 3 });
  assert.ok("topic" in again);
  assert.equal(again.record.headers["x-replay-count"], "3");
  assert.deepEqual(replayPlan(dead({ "x-replay-count": "3" }), { maxReplays: 3 }), { skip: "max-replays" });
});

Deno.test("replay filters by stage, class, pipeline and time; a record without a source is left", () => {
  const filtered = { skip: "filtered" };
  assert.deepEqual(replayPlan(dead({}), { maxReplays: 3, stages: ["decode"] }), filtered);
  assert.deepEqual(replayPlan(dead({}), { maxReplays: 3, classes: ["permanent", "transient"] }), filtered);
  assert.deepEqual(replayPlan(dead({}), { maxReplays: 3, pipelines: ["other"] }), filtered);
  assert.deepEqual(replayPlan(dead({}, 999), { maxReplays: 3, sinceMs: 1_000 }), filtered);
  assert.deepEqual(replayPlan(dead({}, 1_000), { maxReplays: 3, untilMs: 1_000 }), filtered);
  assert.ok("topic" in replayPlan(dead({}, 1_000), { maxReplays: 3, stages: ["invoke"], sinceMs: 1_000 }));
  assert.ok("topic" in replayPlan(dead({}), { maxReplays: 3, classes: ["exhausted"], pipelines: ["orders"] }));
  assert.deepEqual(replayPlan(dead({ "x-source-topic": "" }), { maxReplays: 3 }), { skip: "no-source" });
});
