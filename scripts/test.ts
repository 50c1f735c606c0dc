/**
 * `deno task test`: unit and integration tests, and the JSDoc examples of src/ (`deno test --doc`). Starts one throwaway broker for the whole run unless
 * KAFKA_BOOTSTRAP_SERVERS names one, and stops it afterwards (it is tethered to this process, so a
 * killed run does not leave it behind). Unless SCHEMA_REGISTRY_URL names a schema registry, the run
 * gets at most one, started by the first test that asks for it (tests/support/registry.ts) in a
 * directory named here, and stopped here afterwards. Extra arguments go to `deno test` (e.g. `deno task test tests/unit`).
 */
import { throwawayBroker } from "../src/infra/local_broker.ts";
import { stopLocalRegistry } from "../src/infra/local_registry.ts";

const env: Record<string, string> = {};
const stops: (() => Promise<unknown>)[] = [];
if (!Deno.env.get("KAFKA_BOOTSTRAP_SERVERS")) {
  const broker = await throwawayBroker((line) => console.error(`kafka: ${line}`));
  env.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap;
  stops.push(broker.stop);
}
if (!Deno.env.get("SCHEMA_REGISTRY_URL")) {
  const registryDir = await Deno.makeTempDir({ prefix: "agentstream-registry-" });
  env.AGENTSTREAM_TEST_REGISTRY_DIR = registryDir;
  stops.push(async () => {
    await stopLocalRegistry(registryDir);
    await Deno.remove(registryDir, { recursive: true }).catch(() => {});
  });
}
const targets = Deno.args.length ? Deno.args : ["src/", "tests/", "scripts/check_layers.ts"];
const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "--allow-all", "--doc", ...targets],
  env,
  stdin: "null",
}).spawn();
// Ctrl-C reaches deno test from the terminal too; wait for it, then stop the broker and the registry.
const onSignal = () => {};
Deno.addSignalListener("SIGINT", onSignal);
const status = await child.status;
Deno.removeSignalListener("SIGINT", onSignal);
for (const stop of stops) await stop();
Deno.exit(status.code);
