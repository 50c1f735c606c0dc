/**
 * The broker the integration tests use: `KAFKA_BOOTSTRAP_SERVERS` when set (as `deno task test`
 * sets it), else one started for this test file and stopped when it ends or dies.
 */
import { throwawayBroker } from "../../src/infra/local_broker.ts";

let broker: Promise<string> | undefined;

/** `host:port` of a broker for tests. */
export function testBroker(): Promise<string> {
  broker ??= (async () => {
    const configured = Deno.env.get("KAFKA_BOOTSTRAP_SERVERS");
    if (configured) return configured;
    // Tethered: it goes when this process goes, including when the run is killed.
    const local = await throwawayBroker((line) => console.error(`kafka: ${line}`));
    return local.bootstrap;
  })();
  return broker;
}
