/** `deno task start` as a user runs it: a subprocess, configured only through its environment. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { demoReply } from "../../src/agent/demo_agent.ts";
import { testBroker } from "../support/broker.ts";
import { committedOffsets, createTopics, produce, readRecords, testKafka, uniqueId } from "../support/kafka.ts";
import { startMain } from "../support/main_process.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };
const root = fileURLToPath(new URL("../../", import.meta.url));

async function writePipeline(dir: string, name: string, text: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/${name}`, text);
}

Deno.test("bad pipeline files stop the process with file:path: reason before it connects", integration, async () => {
  const dir = await Deno.makeTempDir();
  await writePipeline(
    dir,
    "bad.yaml",
    "name: bad\nsource: {topics: [a]}\nroutes:\n  - name: r\n    invoke: {prompt_id: '${NOT_SET_ANYWHERE}'}\n",
  );
  await writePipeline(dir, "worse.yaml", "name: worse\nsource: {topics: []}\nroutes: []\n");
  const { output } = await startMain({
    PIPELINES_DIR: dir,
    ARCHESTRA_URL: "http://127.0.0.1:9",
    KAFKA_BOOTSTRAP_SERVERS: "127.0.0.1:9",
  });
  const { code, stdout, stderr } = await output;
  assert.equal(code, 2);
  assert.deepEqual(stderr.trim().split("\n").sort(), [
    `${dir}/bad.yaml:routes[0].invoke.prompt_id: environment variable NOT_SET_ANYWHERE is not set`,
    `${dir}/worse.yaml:routes: Too small: expected array to have >=1 items`,
    `${dir}/worse.yaml:source.topics: Too small: expected array to have >=1 items`,
  ]);
  assert.doesNotMatch(stdout, /Kafka at/, "nothing was connected to");
});

Deno.test("a bad environment variable is named, with exit code 2", integration, async () => {
  const { output } = await startMain({ AGENT_MAX_RETRIES: "many", PIPELINES_DIR: `${root}pipelines` });
  const { code, stderr } = await output;
  assert.equal(code, 2);
  assert.match(stderr, /^environment:AGENT_MAX_RETRIES: /m);
});

Deno.test(
  "a configured broker with no ARCHESTRA_URL is a configuration error: no demo answers for real events",
  integration,
  async () => {
    const { output } = await startMain({
      PIPELINES_DIR: `${root}pipelines`,
      KAFKA_BOOTSTRAP_SERVERS: "127.0.0.1:9",
      ARCHESTRA_URL: undefined,
    });
    const { code, stderr } = await output;
    assert.equal(code, 2);
    assert.match(stderr, /^environment:ARCHESTRA_URL: not set, while KAFKA_BOOTSTRAP_SERVERS is/m);
    assert.match(stderr, /or to demo to use the demo agent on purpose/);
    assert.doesNotMatch(stderr, /Kafka at|demo agent at/, "nothing was started or connected to");
    // An empty value (a `.env` line `ARCHESTRA_URL=`, a Helm value "") is unset too.
    const empty = await (await startMain({
      PIPELINES_DIR: `${root}pipelines`,
      KAFKA_BOOTSTRAP_SERVERS: "127.0.0.1:9",
      ARCHESTRA_URL: "",
    })).output;
    assert.equal(empty.code, 2, empty.stderr);
    assert.match(empty.stderr, /^environment:ARCHESTRA_URL: not set/m);
  },
);

Deno.test("a configured broker that is down is a clear error, never a fallback", integration, async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const { output } = await startMain({
    PIPELINES_DIR: `${root}pipelines`,
    KAFKA_BOOTSTRAP_SERVERS: `127.0.0.1:${port}`,
  });
  const { code, stdout, stderr } = await output;
  assert.equal(code, 1);
  assert.match(stderr, new RegExp(`cannot reach Kafka at 127\\.0\\.0\\.1:${port}`));
  assert.doesNotMatch(stdout, /local broker/);
});

Deno.test(
  "with ARCHESTRA_URL=demo the demo agent answers; SIGTERM stops cleanly with offsets committed",
  integration,
  async () => {
    const topic = `main-${uniqueId()}.customer.events`;
    const dir = await Deno.makeTempDir();
    await writePipeline(
      dir,
      "support.yaml",
      `
name: customer-support
source: { topics: [${topic}] }
routes:
  - name: customer-support
    transform: { template: "Customer ID: {customer_id}" }
    invoke: { prompt_id: "\${CUSTOMER_SUPPORT_PROMPT_ID}" }
`,
    );
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    await produce(kafka, topic, [{ key: "CUST-001", value: '{"customer_id":"CUST-001"}' }]);
    const groupId = `main-${uniqueId()}`;
    const { child, output } = await startMain({
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: groupId,
      ARCHESTRA_URL: "demo",
      ARCHESTRA_TOKEN: "token-that-must-not-leak",
    });
    let exited = false;
    const exitedEarly = output.then(({ code, stderr }) => {
      exited = true;
      throw new Error(`main exited with ${code} before replying:\n${stderr}`);
    });
    try {
      const [reply] = await Promise.race([readRecords(kafka, [`${topic}.responses`], 1), exitedEarly]);
      const envelope = JSON.parse(reply.value!.toString());
      assert.equal(envelope.reply.text, demoReply("customer-support", "Customer ID: CUST-001"));
      assert.match(envelope.agent.url, /^http:\/\/127\.0\.0\.1:\d+\/v1\/a2a\/customer-support$/);
    } finally {
      if (!exited) child.kill("SIGTERM");
    }
    const { code, stdout } = await output;
    assert.equal(code, 0);
    const lines = stdout.trim().split("\n").map((line) => JSON.parse(line).message as string);
    assert.ok(
      lines.slice(0, 4).some((line) => line.startsWith("ARCHESTRA_URL is not set: using the embedded demo agent")),
    );
    assert.ok(lines.some((line) => line.startsWith("stopped")));
    assert.doesNotMatch(stdout, /token-that-must-not-leak/);
    assert.deepEqual(await committedOffsets(kafka, groupId, topic), { 0: "1" });
  },
);
