import assert from "node:assert/strict";
import type { Task } from "../../src/a2a/shapes.ts";
import { eventData, foldEvent } from "../../src/a2a/stream_events.ts";

Deno.test("foldEvent() builds the task from its status and artifact updates", () => {
  let result = foldEvent(undefined, { kind: "task", id: "t", contextId: "c", status: { state: "working" } });
  result = foldEvent(result, {
    kind: "artifact-update",
    taskId: "t",
    contextId: "c",
    artifact: { artifactId: "a", parts: [{ kind: "text", text: "Hello" }] },
  });
  result = foldEvent(result, {
    kind: "artifact-update",
    taskId: "t",
    contextId: "c",
    append: true,
    artifact: { artifactId: "a", parts: [{ kind: "text", text: " world" }] },
  });
  result = foldEvent(result, {
    kind: "status-update",
    taskId: "t",
    contextId: "c",
    status: { state: "completed" },
  });
  const task = result as Task;
  assert.equal(task.status.state, "completed");
  assert.deepEqual(task.artifacts?.[0].parts.map((p) => p.kind === "text" ? p.text : ""), ["Hello", " world"]);
});

Deno.test("foldEvent() takes a message as the answer, and starts a task from an update alone", () => {
  const message = { kind: "message" as const, role: "agent" as const, messageId: "m", parts: [] };
  assert.equal(foldEvent(undefined, message), message);
  const task = foldEvent(undefined, {
    kind: "status-update",
    taskId: "t",
    contextId: "c",
    status: { state: "input-required" },
  });
  assert.deepEqual(task, { kind: "task", id: "t", contextId: "c", status: { state: "input-required" } });
});

Deno.test("eventData() yields each event's data, across chunk boundaries and multi-line data", async () => {
  const chunks = ['data: {"a"', ":1}\n\n: comment\ndata: x\r", "\ndata: y\r\n\r\n", "data: last"];
  const body = ReadableStream.from(chunks.map((c) => new TextEncoder().encode(c)));
  const got: string[] = [];
  for await (const data of eventData(body)) got.push(data);
  assert.deepEqual(got, ['{"a":1}', "x\ny", "last"]);
});
