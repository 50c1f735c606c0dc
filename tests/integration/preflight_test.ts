/** Preflight at start-up, as a user meets it: the bridge as a subprocess against the demo agent. */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

/** A port nothing listens on: a bridge that got as far as Kafka would fail to connect there. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A pipeline with one route to each prompt id. */
function routesTo(promptIds: string[]): string {
  const routes = promptIds.map((id) => `  - { name: to-${id}, invoke: { prompt_id: ${id} } }`).join("\n");
  return `name: p\nsource: { topics: [t] }\nroutes:\n${routes}\n`;
}

Deno.test(
  "preflight: an unknown prompt id or a refused token stops the start before Kafka, naming the route",
  integration,
  async () => {
    const agent = startDemoAgent({ prompts: ["known"], token: "right-token" });
    try {
      const dir = await pipelineDir(routesTo(["known", "unknown"]));
      const env = {
        PIPELINES_DIR: dir,
        ARCHESTRA_URL: agent.url,
        KAFKA_BOOTSTRAP_SERVERS: `127.0.0.1:${closedPort()}`,
      };
      const unknown = await (await startMain({ ...env, ARCHESTRA_TOKEN: "right-token" })).output;
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.deepEqual(unknown.stderr.trim().split("\n"), [
        `preflight: ${dir}/pipeline.yaml:routes[1].invoke: no agent at ${agent.url}/v1/a2a/unknown (HTTP 404): is the prompt id right?`,
      ]);

      const refused = await (await startMain({ ...env, ARCHESTRA_TOKEN: "wrong-token" })).output;
      assert.equal(refused.code, 2, refused.stderr);
      assert.deepEqual(refused.stderr.trim().split("\n"), [
        `preflight: ${dir}/pipeline.yaml:routes[0].invoke: the agent at ${agent.url}/v1/a2a/known refused the token (HTTP 401)`,
        `preflight: ${dir}/pipeline.yaml:routes[1].invoke: the agent at ${agent.url}/v1/a2a/unknown refused the token (HTTP 401)`,
      ]);
      assert.equal(`${refused.stdout}${refused.stderr}`.includes("wrong-token"), false);

      // --no-preflight goes on to Kafka (which is not there: exit 1, not 2).
      const skipped = await (await startMain({ ...env, ARCHESTRA_TOKEN: "right-token" }, { args: ["--no-preflight"] }))
        .output;
      assert.equal(skipped.code, 1, skipped.stderr);
      assert.match(skipped.stderr, /cannot reach Kafka/);
      assert.match(skipped.stdout, /--no-preflight: agent cards are not checked/);
    } finally {
      await agent.close();
    }
  },
);

Deno.test(
  "preflight: an agent that cannot be reached is a warning, not a reason to stay down",
  integration,
  async () => {
    const dir = await pipelineDir(routesTo(["any"]));
    const result = await (await startMain({
      PIPELINES_DIR: dir,
      ARCHESTRA_URL: `http://127.0.0.1:${closedPort()}`,
      KAFKA_BOOTSTRAP_SERVERS: `127.0.0.1:${closedPort()}`,
    })).output;
    assert.equal(result.code, 1, "it went on, to Kafka");
    assert.match(result.stderr, /preflight: .*routes\[0\]\.invoke: could not fetch the agent card/);
    assert.match(result.stderr, /cannot reach Kafka/);
  },
);
