/**
 * sendMessage's answer mode against the two ways Archestra's /v2 answers an approval: the build in
 * ../shared/archestra-real returns the resumed run's Message (with `taskId`), its docs a completed
 * Task whose answer is the artifact `agent-response`. A served JSON-RPC stub plays each.
 */
import assert from "node:assert/strict";
import { questionOf, sendMessage } from "../../src/a2a/send_message.ts";
import { readTask } from "../../src/a2a/shapes.ts";

const asking = {
  id: "t-1",
  contextId: "c-1",
  status: {
    state: "TASK_STATE_INPUT_REQUIRED",
    message: { messageId: "q-1", role: "ROLE_AGENT", parts: [{ text: "May I refund?" }] },
  },
  metadata: { approvalRequests: [{ approvalId: "a-1", toolName: "refund", approved: false, resolved: false }] },
};

function stub(sendResult: unknown) {
  const calls: { method: string; params: Record<string, unknown> }[] = [];
  const server = Deno.serve({ port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    calls.push({ method: body.method, params: body.params });
    const result = body.method === "GetTask" ? asking : sendResult;
    return Response.json({ jsonrpc: "2.0", id: body.id, result });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/v2/a2a/agent`, calls, server };
}

const answer = (url: string) =>
  sendMessage({
    url,
    token: "t",
    version: "1.0",
    timeoutMs: 5_000,
    message: {
      messageId: "m-2",
      contextId: "c-1",
      taskId: "t-1",
      metadata: { taskOps: { approvalDecisions: [{ approvalId: "a-1", approved: true }] } },
    },
    answer: { taskId: "t-1", question: questionOf(readTask(asking)) },
  });

for (
  const [shape, result] of [
    ["the resumed run's Message (the real build)", {
      message: {
        messageId: "r-1",
        role: "ROLE_AGENT",
        taskId: "t-1",
        contextId: "c-1",
        parts: [{ text: "Refunded." }],
      },
    }],
    ["a completed Task with its agent-response artifact (the docs)", {
      task: {
        id: "t-1",
        contextId: "c-1",
        status: { state: "TASK_STATE_COMPLETED" },
        artifacts: [
          { artifactId: "x", name: "tool-output", parts: [{ text: "{...}" }] },
          { artifactId: "y", name: "agent-response", parts: [{ text: "Refunded." }] },
        ],
      },
    }],
  ] as const
) {
  Deno.test(`an approval sent into its task ends in one reply: ${shape}`, async () => {
    const { url, calls, server } = stub(result);
    try {
      const outcome = await answer(url);
      assert.ok("reply" in outcome, JSON.stringify(outcome));
      assert.equal(outcome.reply.text, "Refunded.");
      assert.equal(outcome.reply.state, "completed");
      assert.deepEqual(calls.map((c) => c.method), ["GetTask", "SendMessage"]);
      const sent = calls[1].params.message as Record<string, unknown>;
      assert.equal(sent.taskId, "t-1");
      assert.deepEqual(sent.parts, [], "decisions alone: no parts");
      assert.deepEqual(sent.metadata, { taskOps: { approvalDecisions: [{ approvalId: "a-1", approved: true }] } });
    } finally {
      await server.shutdown();
    }
  });
}

Deno.test("an answer sent before (a redelivery) is not sent again: a task that asks anew is followed", async () => {
  const { url, calls, server } = stub({});
  try {
    const outcome = await sendMessage({
      url,
      token: "t",
      version: "1.0",
      timeoutMs: 5_000,
      message: { messageId: "m-2", taskId: "t-1", metadata: {} },
      answer: { taskId: "t-1", question: "an earlier question", sent: true },
    });
    assert.ok("reply" in outcome);
    assert.equal(outcome.reply.state, "input-required", "it asks something else now: that is the reply");
    assert.deepEqual(calls.map((c) => c.method), ["GetTask"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("an answer or a timeout for a task that no longer asks is skipped: nothing is sent", async () => {
  const done = { ...asking, status: { state: "TASK_STATE_COMPLETED" } };
  const calls: string[] = [];
  const server = Deno.serve({ port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    calls.push(body.method);
    return Response.json({ jsonrpc: "2.0", id: body.id, result: done });
  });
  try {
    for (const cancel of [false, true]) {
      const outcome = await sendMessage({
        url: `http://127.0.0.1:${server.addr.port}/v2/a2a/agent`,
        token: "t",
        version: "1.0",
        timeoutMs: 5_000,
        message: { messageId: "m-3", taskId: "t-1", metadata: {} },
        answer: { taskId: "t-1", question: questionOf(readTask(asking)), cancel },
      });
      assert.ok("skipped" in outcome, JSON.stringify(outcome));
    }
    assert.deepEqual(calls, ["GetTask", "GetTask"]);
  } finally {
    await server.shutdown();
  }
});
