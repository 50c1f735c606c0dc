import assert from "node:assert/strict";
import { readResult, readStreamEvent, readTask, ShapeError } from "../../src/a2a/shapes.ts";
import { classifyRpcError, classifyStatus } from "../../src/a2a/send_message.ts";
import { versionFromCard } from "../../src/a2a/dialect.ts";

Deno.test("readResult() reads Archestra's bare /v1 Message, which has no kind", () => {
  const result = readResult({ messageId: "m-1", role: "agent", parts: [{ kind: "text", text: "hello" }] });
  assert.deepEqual(result, {
    kind: "message",
    role: "agent",
    messageId: "m-1",
    parts: [{ kind: "text", text: "hello" }],
    contextId: undefined,
    taskId: undefined,
  });
});

Deno.test("readResult() reads A2A 1.0 results: wrapped, ROLE_AGENT, TASK_STATE_*, parts without kind", () => {
  const message = readResult({
    message: { messageId: "m", role: "ROLE_AGENT", parts: [{ text: "hi" }, { data: { n: 1 } }] },
  });
  assert.equal(message.kind, "message");
  assert.deepEqual(message.kind === "message" && message.parts, [{ kind: "text", text: "hi" }, {
    kind: "data",
    data: { n: 1 },
  }]);
  const task = readResult({
    task: {
      id: "t",
      contextId: "c",
      status: { state: "TASK_STATE_INPUT_REQUIRED", message: { role: "ROLE_AGENT", parts: [{ text: "which one?" }] } },
      artifacts: [{ artifactId: "a", parts: [{ text: "draft" }] }],
    },
  });
  assert.equal(task.kind, "task");
  if (task.kind !== "task") return;
  assert.equal(task.status.state, "input-required");
  assert.deepEqual(task.status.message?.parts, [{ kind: "text", text: "which one?" }]);
  assert.deepEqual(task.artifacts?.[0].parts, [{ kind: "text", text: "draft" }]);
  // GetTask answers with the Task itself, unwrapped.
  assert.equal(readTask({ id: "t", status: { state: "TASK_STATE_COMPLETED" } }).status.state, "completed");
});

Deno.test("readResult() reads 0.3 results with kind, as the SDK sends them", () => {
  const task = readResult({ kind: "task", id: "t", contextId: "c", status: { state: "working" } });
  assert.equal(task.kind === "task" && task.status.state, "working");
  assert.equal(readResult({ kind: "message", role: "agent", messageId: "m", parts: [] }).kind, "message");
});

Deno.test("readStreamEvent() reads 1.0 status and artifact updates", () => {
  const status = readStreamEvent({ statusUpdate: { taskId: "t", status: { state: "TASK_STATE_WORKING" } } });
  assert.deepEqual(status, { kind: "status-update", taskId: "t", contextId: undefined, status: { state: "working" } });
  const artifact = readStreamEvent({
    artifactUpdate: { taskId: "t", artifact: { artifactId: "a", parts: [{ text: "x" }] } },
  });
  assert.equal(artifact.kind, "artifact-update");
});

Deno.test("readResult() names what came back when it has no known shape", () => {
  for (const value of [null, "text", { foo: 1 }, { kind: "banana" }, { kind: "task", id: "t" }]) {
    assert.throws(() => readResult(value), ShapeError, JSON.stringify(value));
  }
  assert.throws(() => readResult({ foo: 1 }), /neither a Message nor a Task: \{"foo":1\}/);
  assert.throws(() => readResult({ id: "t", status: { state: "TASK_STATE_EXPLODED" } }), /unknown task state/);
  assert.throws(() => readResult({ kind: "message", parts: "hello" }), /parts is not a list/);
});

Deno.test("JSON-RPC errors are classified as Archestra means them", () => {
  assert.equal(classifyRpcError(-32603, "LLM provider error: 429"), "transient");
  assert.equal(classifyRpcError(-32600, "Invalid or unauthorized token"), "refused");
  assert.equal(classifyRpcError(-32600, "Authorization header required. Use: Bearer <token>"), "refused");
  assert.equal(classifyRpcError(-32600, "Invalid Request"), "permanent");
  assert.equal(classifyRpcError(-32602, "Agent not found"), "refused");
  assert.equal(classifyRpcError(-32602, "Agent is not an internal agent"), "refused");
  assert.equal(classifyRpcError(-32602, "No message content provided"), "permanent");
  assert.equal(classifyRpcError(-32601, "Method not found"), "refused");
  assert.equal(classifyRpcError(-32009, "version not supported"), "refused");
  assert.equal(classifyRpcError(-32001, "Task not found"), "permanent");
  assert.equal(classifyRpcError(undefined, ""), "permanent");
  assert.deepEqual([401, 403, 404, 400, 408, 429, 500, 503].map(classifyStatus), [
    "refused",
    "refused",
    "refused",
    "permanent",
    "transient",
    "transient",
    "transient",
    "transient",
  ]);
});

Deno.test("versionFromCard() reads supportedInterfaces; no card or a 0.3 card means 0.3", () => {
  assert.equal(versionFromCard(undefined), "0.3");
  assert.equal(versionFromCard({ name: "x", protocolVersion: "0.3.0" }), "0.3");
  assert.equal(
    versionFromCard({ supportedInterfaces: [{ url: "u", protocolBinding: "JSONRPC", protocolVersion: "1.0" }] }),
    "1.0",
  );
  assert.equal(
    versionFromCard({ supportedInterfaces: [{ url: "u", protocolBinding: "GRPC", protocolVersion: "1.0" }] }),
    "0.3",
    "a 1.0 interface we do not speak (gRPC) does not count",
  );
});
