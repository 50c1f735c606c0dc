/** A restarted bridge resumes from its committed offsets: nothing lost, nothing answered twice. */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { until } from "../support/until.ts";
import { pipelinesFrom, startTestBridge } from "../support/bridge.ts";
import {
  committedOffsets,
  createTopics,
  produce,
  readRecords,
  testKafka,
  topicSize,
  uniqueId,
} from "../support/kafka.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test("a restart of the bridge resumes from committed offsets with nothing lost", integration, async () => {
  const topic = `restart-${uniqueId()}.events`;
  const groupId = `restart-${uniqueId()}`;
  const { kafka } = await testKafka();
  await createTopics(kafka, [topic], 2);
  const agent = startDemoAgent();
  const pipelines = pipelinesFrom([`
name: restart
source: { topics: [${topic}] }
routes: [{ name: echo, transform: { template: "n={n}" }, invoke: { prompt_id: echo } }]
`]);
  const batch = (from: number) =>
    Array.from({ length: 10 }, (_, i) => ({ key: `k${from + i}`, value: JSON.stringify({ n: from + i }) }));
  try {
    const first = await startTestBridge({ pipelines, archestraUrl: agent.url, groupId });
    await produce(kafka, topic, batch(0));
    await readRecords(kafka, [`${topic}.responses`], 10);
    await first.stop();
    const committed = await committedOffsets(kafka, groupId, topic);
    assert.equal(Number(committed[0]) + Number(committed[1]), 10, "all ten committed on stop");

    // Produced while no bridge runs: the next one must answer these and only these.
    await produce(kafka, topic, batch(10));
    const second = await startTestBridge({ pipelines, archestraUrl: agent.url, groupId });
    const replies = await readRecords(kafka, [`${topic}.responses`], 20);
    await second.stop();
    assert.equal(second.stats.replied, 10);
    const answered = replies.map((r) => JSON.parse(r.value!.toString()).request.text).sort();
    assert.deepEqual(answered, Array.from({ length: 20 }, (_, n) => `n=${n}`).sort());
  } finally {
    await agent.close();
  }
  assert.equal(await topicSize(kafka, `${topic}.responses`), 20, "no reply written twice");
  assert.equal(agent.requests.length, 20, "no message sent to the agent twice");
});

Deno.test(
  "an offset is not committed while its agent call is in flight, and is once the reply is written",
  integration,
  async () => {
    const topic = `inflight-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const gate = Promise.withResolvers<void>();
    const agent = startDemoAgent({ behaviours: { held: { gate: gate.promise } } });
    const bridge = await startTestBridge({
      pipelines: pipelinesFrom([
        `name: held\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: held } }]\n`,
      ]),
      archestraUrl: agent.url,
    });
    try {
      await produce(kafka, topic, [{ key: "k", value: "{}" }]);
      await agent.waitForRequests(1);
      // Let a whole commit cycle run with the call still open: it must not move past the message.
      const checks = bridge.stats.commitChecks;
      await until(() => bridge.stats.commitChecks >= checks + 2, "a commit cycle");
      assert.notEqual((await committedOffsets(kafka, bridge.groupId, topic))[0], "1");
      gate.resolve();
      await readRecords(kafka, [`${topic}.responses`], 1);
      await until(() => bridge.stats.replied === 1, "the reply to be recorded");
      const after = bridge.stats.commitChecks;
      await until(() => bridge.stats.commitChecks >= after + 2, "a commit cycle after the reply");
      assert.equal((await committedOffsets(kafka, bridge.groupId, topic))[0], "1");
    } finally {
      gate.resolve();
      await bridge.stop();
      await agent.close();
    }
  },
);
