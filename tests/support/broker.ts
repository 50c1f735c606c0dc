/**
 * The broker the integration tests use: `KAFKA_BOOTSTRAP_SERVERS` when set, else one started for
 * this test run (in a temporary directory, on a free port) and stopped when the run ends.
 */
import { ensureLocalBroker } from "../../src/infra/local_broker.ts";

let broker: Promise<string> | undefined;

/** `host:port` of a broker for tests. */
export function testBroker(): Promise<string> {
  broker ??= (async () => {
    const configured = Deno.env.get("KAFKA_BOOTSTRAP_SERVERS");
    if (configured) return configured;
    const stateDir = await Deno.makeTempDir({ prefix: "agentstream-test-broker-" });
    const local = await ensureLocalBroker({ stateDir, port: 0, log: (line) => console.error(`kafka: ${line}`) });
    globalThis.addEventListener("unload", () => {
      // unload handlers cannot wait: kill at once, the data is throwaway.
      try {
        const { pid } = JSON.parse(Deno.readTextFileSync(`${stateDir}/broker.json`));
        Deno.kill(pid, "SIGKILL");
        Deno.removeSync(stateDir, { recursive: true });
      } catch { /* already gone */ }
    });
    return local.bootstrap;
  })();
  return broker;
}
