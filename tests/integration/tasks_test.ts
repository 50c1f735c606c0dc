/**
 * Long-running A2A tasks across a restart: the bridge (a subprocess) stops while the agent still
 * works on a task; the next run polls that task instead of sending the message again.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { testBroker } from "../support/broker.ts";
import { createTopics, produce, readRecords, testKafka, uniqueId } from "../support/kafka.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";
import { until } from "../support/until.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a task still running at a stop is resumed by its id after the restart, not sent again",
  integration,
  async () => {
    const topic = `tasks-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    // The task stays `working` until this run has gone; then it finishes.
    const agent = startDemoAgent({ flavour: "a2a-1.0", behaviours: { slow: { task: "working", workMs: 600_000 } } });
    const dir = await pipelineDir(
      `name: tasks\nsource: { topics: [${topic}] }\n` +
        `routes: [{ name: r, invoke: { prompt_id: slow, timeout: 60s, long_running: true } }]\n`,
    );
    const env = {
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: `tasks-${uniqueId()}`,
      ARCHESTRA_URL: agent.url,
      ARCHESTRA_A2A_VERSION: "1.0",
      KAFKA_COMMIT_INTERVAL: "200ms",
      AGENT_SHUTDOWN_GRACE: "1s", // the stop does not wait for the task: it is cut short while polling
    };
    const sends = () => agent.requests.filter((r) => r.op === "send");
    const polls = () => agent.requests.filter((r) => r.op === "get");
    try {
      const first = await startMain(env);
      await produce(kafka, topic, [{ key: "k", value: JSON.stringify({ long: "job" }) }]);
      // Polled once: the task id was recorded before polling began.
      await until(() => polls().length >= 1, "the first poll", 60_000);
      first.child.kill("SIGTERM");
      assert.equal((await first.output).code, 0);
      const [sent] = sends();
      const taskPolls = polls().length;

      agent.setBehaviour("slow", { task: "working", workMs: 0 });
      const second = await startMain(env);
      try {
        const [reply] = await readRecords(kafka, [`${topic}.responses`], 1);
        const envelope = JSON.parse(reply.value!.toString());
        assert.equal(sends().length, 1, "the message reached the agent once");
        const taskId = polls()[0].taskId;
        assert.ok(polls().slice(taskPolls).every((r) => r.taskId === taskId), "the next run polled the same task");
        assert.equal(envelope.reply.task_id, taskId);
        assert.equal(sent.message?.messageId, envelope.request.message_id);
      } finally {
        second.child.kill("SIGTERM");
        assert.equal((await second.output).code, 0);
      }
    } finally {
      await agent.close();
    }
  },
);
