/**
 * `deno task test`: unit and integration tests, and the JSDoc examples of src/ (`deno test --doc`). Starts one throwaway broker for the whole run unless
 * KAFKA_BOOTSTRAP_SERVERS names one, and stops it afterwards (it is tethered to this process, so a
 * killed run does not leave it behind). Extra arguments go to `deno test` (e.g. `deno task test tests/unit`).
 */
import { throwawayBroker } from "../src/infra/local_broker.ts";

const env: Record<string, string> = {};
let stop = () => Promise.resolve();
if (!Deno.env.get("KAFKA_BOOTSTRAP_SERVERS")) {
  const broker = await throwawayBroker((line) => console.error(`kafka: ${line}`));
  env.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap;
  stop = broker.stop;
}
const targets = Deno.args.length ? Deno.args : ["src/", "tests/", "scripts/check_layers.ts"];
const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "--allow-all", "--doc", ...targets],
  env,
  stdin: "null",
}).spawn();
// Ctrl-C reaches deno test from the terminal too; wait for it, then stop the broker.
const onSignal = () => {};
Deno.addSignalListener("SIGINT", onSignal);
const status = await child.status;
Deno.removeSignalListener("SIGINT", onSignal);
await stop();
Deno.exit(status.code);
