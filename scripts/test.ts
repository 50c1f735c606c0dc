/**
 * `deno task test`: unit and integration tests. Starts one local broker for the whole run unless
 * KAFKA_BOOTSTRAP_SERVERS names one, and stops what it started. Extra arguments go to `deno test`
 * (e.g. `deno task test tests/unit`).
 */
import { ensureLocalBroker } from "../src/infra/local_broker.ts";

const env: Record<string, string> = {};
let stop = () => Promise.resolve();
let stateDir: string | undefined;
if (!Deno.env.get("KAFKA_BOOTSTRAP_SERVERS")) {
  stateDir = await Deno.makeTempDir({ prefix: "agentstream-test-broker-" });
  const broker = await ensureLocalBroker({ stateDir, port: 0, log: (line) => console.error(`kafka: ${line}`) });
  env.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap;
  stop = broker.stop;
}
const targets = Deno.args.length ? Deno.args : ["tests/"];
const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "--allow-all", ...targets],
  env,
  stdin: "null",
}).spawn();
// Stop the broker on Ctrl-C too; deno test gets the same signal from the terminal.
const onSignal = () => {};
Deno.addSignalListener("SIGINT", onSignal);
const status = await child.status;
Deno.removeSignalListener("SIGINT", onSignal);
await stop();
if (stateDir) await Deno.remove(stateDir, { recursive: true }).catch(() => {});
Deno.exit(status.code);
