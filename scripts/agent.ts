/**
 * `deno task agent [--port 9000] [--latency 0] [--token T] [--behaviours JSON]`: the demo A2A agent
 * on its own, serving `POST /v1/a2a/{promptId}` like Archestra. Point ARCHESTRA_URL at it.
 * `--behaviours '{"slow":{"latencyMs":5000}}'` gives prompt ids behaviours of their own.
 */
import { parseArgs } from "node:util";
import { startDemoAgent } from "../src/agent/demo_agent.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: Deno.env.get("DEMO_AGENT_PORT") ?? "9000" },
    hostname: { type: "string", default: "127.0.0.1" },
    latency: { type: "string", default: "0" },
    token: { type: "string" },
    behaviours: { type: "string", default: "{}" },
  },
});
const agent = startDemoAgent({
  port: Number(values.port),
  hostname: values.hostname,
  latencyMs: Number(values.latency),
  token: values.token,
  behaviours: JSON.parse(values.behaviours),
  keep: 100,
});
console.log(`demo agent listening: ARCHESTRA_URL=${agent.url}`);
const stop = () => agent.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
