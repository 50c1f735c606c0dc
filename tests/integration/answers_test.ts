/**
 * Agents that ask, answered over Kafka, on the real broker against every agent flavour that has
 * tasks (Archestra's `/v2` asks for tool approvals; the SDK 1.x and 0.3 ask in text): a question is
 * published and its message committed; an answer on the answers topic goes into the task, whose
 * final reply follows; a denial ends as the agent decides; a task can ask twice; an unanswered task
 * is cancelled at its timeout and dead-lettered; an answer for no waiting task goes to the answers
 * topic's DLQ; and a bridge restarted between question and answer still meets them, once.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { demoAnswered, demoQuestion } from "../../src/agent/sdk_agent.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import { AGENT_FLAVOURS, type AgentFlavour } from "../support/flavours.ts";
import {
  committedOffsets,
  createTopics,
  produce,
  readRecords,
  testKafka,
  topicSize,
  uniqueId,
} from "../support/kafka.ts";
import { until } from "../support/until.ts";
import { testBroker } from "../support/broker.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

const integration = { sanitizeOps: false, sanitizeResources: false };

/** The flavours whose agents have tasks, and so can ask. */
const ASKING = AGENT_FLAVOURS.filter((flavour) => flavour.name !== "Archestra /v1");

// deno-lint-ignore no-explicit-any
type Envelope = any;

/** A bridge on one topic whose agent (`refund`) asks `asks` times; `answers` is the route's option. */
async function setUp(flavour: AgentFlavour, asks: number, answers = "", extra = "") {
  const topic = `refunds-${uniqueId()}.events`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic, `${topic}.responses`]);
  const agent = startDemoAgent({ flavour: flavour.flavour, behaviours: { refund: { asks } } });
  const groupId = `answers-${uniqueId()}`;
  const options = answers ? `, answers: ${answers}` : "";
  const pipelines = pipelinesFrom([
    `name: refunds\nsource: { topics: [${topic}] }\n` +
    `routes: [{ name: refund, invoke: { prompt_id: refund, timeout: 10s${options} } }]\n${extra}`,
  ]);
  const start = () => startTestBridge({ pipelines, archestraUrl: agent.url, archestraA2a: flavour.version, groupId });
  const envelopes = async (count: number): Promise<Envelope[]> =>
    (await readRecords(kafka, [`${topic}.responses`], count)).map((r) => JSON.parse(r.value!.toString()));
  /** Answers a question as its flavour asks it: Archestra's approvals, the others' text. */
  const answer = (question: Envelope, approved: boolean, text = approved ? "yes, go ahead" : "denied") =>
    produce(kafka, question.answer_to.topic, [{
      key: question.answer_to.key,
      value: JSON.stringify(
        question.reply.approval_requests
          ? {
            approvals: question.reply.approval_requests.map((r: Envelope) => ({ approvalId: r.approvalId, approved })),
          }
          : { text },
      ),
    }]);
  return { topic, kafka, agent, groupId, start, envelopes, answer };
}

for (const flavour of ASKING) {
  Deno.test(
    `${flavour.name}: a task that asks publishes its question, commits its message, and its answer from Kafka ends in one reply`,
    integration,
    async () => {
      const { topic, kafka, agent, groupId, start, envelopes, answer } = await setUp(flavour, 1);
      const bridge = await start();
      try {
        await produce(kafka, topic, [{ key: "order-7", value: JSON.stringify({ refund: 42 }) }]);
        const [question] = await envelopes(1);
        assert.equal(question.status, "input-required");
        assert.equal(question.reply.text, demoQuestion(1, 1));
        assert.ok(question.reply.task_id && question.reply.context_id, "the task and its conversation are named");
        assert.deepEqual(question.answer_to.topic, `${topic}.answers`);
        assert.equal(question.answer_to.key, question.reply.task_id);
        if (flavour.name === "Archestra /v2") {
          assert.equal(question.reply.approval_requests.length, 1, "Archestra's approval requests, as given");
          assert.equal(question.reply.approval_requests[0].toolName, "refund");
        }
        // A waiting task holds no offset: the message is committed with its question published.
        await until(async () => (await committedOffsets(kafka, groupId, topic))[0] === "1", "the question's commit");

        await answer(question, true);
        const [, final] = await envelopes(2);
        assert.equal(final.status, "completed");
        const said = flavour.name === "Archestra /v2" ? "approved" : "yes, go ahead";
        assert.equal(final.reply.text, demoAnswered("refund", said));
        assert.equal(final.reply.task_id, question.reply.task_id, "the same task, followed to its end");
        assert.equal(final.source.offset, question.source.offset, "the reply is the message's");
        assert.equal(final.answered.task_id, question.reply.task_id);
        const keys = (await readRecords(kafka, [`${topic}.responses`], 2)).map((r) => r.key);
        assert.deepEqual(keys, ["order-7", "order-7"], "the reply is keyed as its message, not by task id");
        await until(
          async () => (await committedOffsets(kafka, groupId, `${topic}.answers`))[0] === "1",
          "the answer's commit",
        );
        assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
        const sends = agent.requests.filter((r) => r.op === "send");
        assert.equal(sends.length, 2, "the message, then its answer: nothing sent twice");
        assert.equal(sends[1].message?.taskId, question.reply.task_id, "the answer names its task");
      } finally {
        await bridge.stop();
        await agent.close();
      }
    },
  );

  Deno.test(
    `${flavour.name}: a denied answer ends as the agent decides; a task can ask twice`,
    integration,
    async () => {
      const { topic, kafka, agent, start, envelopes, answer } = await setUp(flavour, 2);
      const bridge = await start();
      try {
        await produce(kafka, topic, [{ key: "order-8", value: JSON.stringify({ refund: 9 }) }]);
        const [first] = await envelopes(1);
        assert.equal(first.reply.text, demoQuestion(1, 2));
        await answer(first, true);
        const [, second] = await envelopes(2);
        assert.equal(second.status, "input-required", "the task asks again");
        assert.equal(second.reply.text, demoQuestion(2, 2));
        assert.equal(second.reply.task_id, first.reply.task_id);
        await answer(second, false);
        const [, , final] = await envelopes(3);
        assert.equal(final.status, "completed");
        assert.equal(final.reply.text, demoAnswered("refund", "denied"), "the agent decides what a denial means");
        assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
      } finally {
        await bridge.stop();
        await agent.close();
      }
    },
  );

  Deno.test(
    `${flavour.name}: an unanswered task is cancelled at its timeout and dead-lettered as input-required`,
    integration,
    async () => {
      const { topic, kafka, agent, start, envelopes } = await setUp(flavour, 1, "{ timeout: 2s }");
      const bridge = await start();
      try {
        await produce(kafka, topic, [{ key: "order-9", value: JSON.stringify({ refund: 1 }) }]);
        const [question] = await envelopes(1);
        const [dead] = await readRecords(kafka, [`${topic}.dlq`], 1);
        assert.equal(dead.headers["x-error-class"], "input-required");
        assert.equal(dead.headers["x-task-id"], question.reply.task_id);
        assert.equal(dead.key, "order-9", "the message whose task it was");
        assert.ok(
          agent.requests.some((r) => r.op === "cancel" && r.taskId === question.reply.task_id),
          "the task was cancelled",
        );
        assert.equal(await topicSize(kafka, `${topic}.answers.dlq`), 0);
      } finally {
        await bridge.stop();
        await agent.close();
      }
    },
  );
}

Deno.test(
  "an answer sent twice goes into its task once: one reply, the other answer skipped or dead-lettered",
  integration,
  async () => {
    const { topic, kafka, agent, start, envelopes, answer } = await setUp(ASKING[0], 1);
    const bridge = await start();
    try {
      await produce(kafka, topic, [{ key: "order-13", value: JSON.stringify({ refund: 2 }) }]);
      const [question] = await envelopes(1);
      await answer(question, true);
      await answer(question, true);
      // The second meets the task finished (skipped) or, once the first is committed, no task (answers DLQ).
      await until(() => bridge.stats.skipped + bridge.stats.deadLettered === 1, "the second answer's outcome");
      assert.equal(await topicSize(kafka, `${topic}.responses`), 2, "one question, one reply");
      assert.equal(agent.requests.filter((r) => r.op === "send").length, 2, "the message once, the answer once");
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "with exactly-once, the answer's offset commits in the transaction that writes its reply",
  integration,
  async () => {
    const { topic, kafka, agent, groupId, start, envelopes, answer } = await setUp(
      ASKING[1],
      1,
      "",
      "delivery: { guarantee: exactly-once }\n",
    );
    const bridge = await start();
    try {
      await produce(kafka, topic, [{ key: "order-11", value: JSON.stringify({ refund: 3 }) }]);
      const [question] = await envelopes(1);
      await answer(question, true);
      const [, final] = await envelopes(2);
      assert.equal(final.status, "completed");
      await until(
        async () => (await committedOffsets(kafka, groupId, `${topic}.answers`))[0] === "1",
        "the answer's offset, committed with its reply",
      );
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

Deno.test(
  "an answer for no waiting task, or of the wrong shape, goes to the answers topic's DLQ",
  integration,
  async () => {
    const { topic, kafka, agent, start } = await setUp(ASKING[1], 1);
    const bridge = await start();
    try {
      await until(() => bridge.topics().includes(`${topic}.answers`), "the answers topic consumed");
      await produce(kafka, `${topic}.answers`, [
        { key: "no-such-task", value: JSON.stringify({ text: "hello?" }) },
        { key: "no-such-task", value: JSON.stringify({ yes: true }) },
      ]);
      const dead = await readRecords(kafka, [`${topic}.answers.dlq`], 2);
      assert.match(dead[0].headers["x-error-message"], /no task no-such-task waits/);
      assert.match(dead[1].headers["x-error-message"], /an answer is/);
      assert.equal(agent.requests.length, 0, "the agent heard nothing of them");
    } finally {
      await bridge.stop();
      await agent.close();
    }
  },
);

for (const flavour of ASKING) {
  Deno.test(
    `${flavour.name}: a bridge restarted between question and answer meets them once`,
    integration,
    async () => {
      const { topic, kafka, agent, start, envelopes, answer } = await setUp(flavour, 1);
      let bridge = await start();
      try {
        await produce(kafka, topic, [{ key: "order-10", value: JSON.stringify({ refund: 5 }) }]);
        const [question] = await envelopes(1);
        await bridge.stop();
        await answer(question, true);
        bridge = await start();
        const [, final] = await envelopes(2);
        assert.equal(final.status, "completed");
        assert.equal(final.reply.task_id, question.reply.task_id);
        assert.equal(agent.requests.filter((r) => r.op === "send").length, 2, "the message once, the answer once");
        await until(() => bridge.stats.replied === 1, "the answer's reply counted");
        assert.equal(await topicSize(kafka, `${topic}.responses`), 2, "one question, one reply");
      } finally {
        await bridge.stop();
        await agent.close();
      }
    },
  );
}

Deno.test(
  "the shipped approvals example, run as a user would: a refund asked, approved with deno task answer, made",
  integration,
  async () => {
    const topic = `refunds-${uniqueId()}.requests`;
    const { kafka } = await testKafka();
    const yaml = (await Deno.readTextFile(`${root}pipelines/examples/approvals/refunds.yaml`))
      .replace("topics: [orders.refunds]", `topics: [${topic}]`);
    const dir = await pipelineDir(yaml);
    const env = { KAFKA_BOOTSTRAP_SERVERS: await testBroker(), KAFKA_GROUP_ID: `refunds-${uniqueId()}` };
    await createTopics(kafka, [topic, `${topic}.responses`]);
    const main = await startMain({ ...env, PIPELINES_DIR: dir, ARCHESTRA_A2A_VERSION: "1.0" });
    const task = (name: string, ...args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", `--config=${root}deno.json`, name, ...args],
        cwd: root,
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
    try {
      await main.waitForLog((r) => /^consuming/.test(r.message), "consuming");
      const sent = await task(
        "send",
        "--topic",
        topic,
        "--key",
        "ORD-123",
        "--value",
        '{"order_id": "ORD-123", "amount": 42, "reason": "arrived broken"}',
      );
      assert.equal(sent.code, 0, new TextDecoder().decode(sent.stderr));
      const [question] = (await readRecords(kafka, [`${topic}.responses`], 1)).map((r) =>
        JSON.parse(r.value!.toString())
      );
      assert.equal(question.status, "input-required");
      assert.equal(question.reply.approval_requests[0].toolName, "refund");
      const answered = await task("answer", question.reply.task_id, "--approve");
      const said = new TextDecoder().decode(answered.stdout) + new TextDecoder().decode(answered.stderr);
      assert.equal(answered.code, 0, said);
      assert.match(said, new RegExp(`answered task ${question.reply.task_id} on ${topic}\\.answers`));
      const [, final] = (await readRecords(kafka, [`${topic}.responses`], 2)).map((r) =>
        JSON.parse(r.value!.toString())
      );
      assert.equal(final.status, "completed");
      assert.equal(final.reply.text, demoAnswered("refunds", "approved"));
      const unknown = await task("answer", "no-such-task", "--deny");
      assert.equal(unknown.code, 1);
      assert.match(new TextDecoder().decode(unknown.stderr), /no task no-such-task waits for an answer/);
    } finally {
      main.child.kill("SIGTERM");
      await main.output;
    }
  },
);

Deno.test(
  "two replicas: a question asked through one, the group rebalanced, the answer met once by whichever owns it",
  integration,
  async () => {
    const { topic, kafka, agent, start, envelopes, answer } = await setUp(ASKING[0], 1);
    const first = await start();
    let second: Awaited<ReturnType<typeof start>> | undefined;
    try {
      await produce(kafka, topic, [{ key: "order-12", value: JSON.stringify({ refund: 8 }) }]);
      const [question] = await envelopes(1);
      // A second replica joins: the group rebalances, and either may own the answers topic's partition.
      second = await start();
      await until(() => first.stats.rebalances + second!.stats.rebalances > 0, "the rebalance");
      await answer(question, true);
      const [, final] = await envelopes(2);
      assert.equal(final.status, "completed");
      assert.equal(final.reply.task_id, question.reply.task_id);
      await until(() => first.stats.replied + second!.stats.replied === 2, "the question and the reply counted");
      assert.equal(agent.requests.filter((r) => r.op === "send").length, 2, "the message once, the answer once");
      assert.equal(await topicSize(kafka, `${topic}.dlq`), 0);
      assert.equal(await topicSize(kafka, `${topic}.answers.dlq`), 0);
    } finally {
      await second?.stop();
      await first.stop();
      await agent.close();
    }
  },
);
