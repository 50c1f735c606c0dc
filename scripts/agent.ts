/**
 * `deno task agent [--port 9000] [--flavour archestra-v1] [--latency 0] [--token T] [--behaviours JSON]`:
 * the demo A2A agent on its own, serving `POST /v1/a2a/{promptId}` and `/v2/a2a/{promptId}` like
 * Archestra. Point ARCHESTRA_URL at it. `--flavour` is `archestra-v1` (Archestra's wire format),
 * `a2a-1.0` or `a2a-0.3` (`@a2a-js/sdk` servers). `--behaviours '{"slow":{"latencyMs":5000}}'`
 * gives prompt ids behaviours of their own.
 */
import { parseArgs } from "node:util";
import { type Flavour, FLAVOURS, startDemoAgent } from "../src/agent/demo_agent.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: Deno.env.get("DEMO_AGENT_PORT") ?? "9000" },
    hostname: { type: "string", default: "127.0.0.1" },
    latency: { type: "string", default: "0" },
    token: { type: "string" },
    behaviours: { type: "string", default: "{}" },
    flavour: { type: "string", default: "archestra-v1" },
  },
});
if (!FLAVOURS.includes(values.flavour as Flavour)) {
  console.error(`--flavour: "${values.flavour}" is not one of ${FLAVOURS.join(", ")}`);
  Deno.exit(2);
}
const agent = startDemoAgent({
  flavour: values.flavour as Flavour,
  port: Number(values.port),
  hostname: values.hostname,
  latencyMs: Number(values.latency),
  token: values.token,
  behaviours: JSON.parse(values.behaviours),
  keep: 100,
});
console.log(`demo agent (${agent.flavour}) listening: ARCHESTRA_URL=${agent.url}`);
const stop = () => agent.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
