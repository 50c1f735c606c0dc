/**
 * `deno task kafka:start` / `kafka:stop` / `kafka:status`: the local single-node broker.
 * `start` prints `KAFKA_BOOTSTRAP_SERVERS=<host:port>` as its last line.
 */
import { runCommand } from "../src/errors.ts";
import { defaultStateDir, ensureLocalBroker, runningBroker, stopLocalBroker } from "../src/infra/local_broker.ts";

const command = Deno.args[0] ?? "start";
const log = (line: string) => console.error(`kafka: ${line}`);
async function main(): Promise<number> {
  if (command === "start") {
    const broker = await ensureLocalBroker({ log });
    if (!broker.started) log(`a broker already answers at ${broker.bootstrap}`);
    console.log(`KAFKA_BOOTSTRAP_SERVERS=${broker.bootstrap}`);
  } else if (command === "stop") {
    log(await stopLocalBroker() ? "stopped" : `no broker was running from ${defaultStateDir()}`);
  } else if (command === "status") {
    const bootstrap = await runningBroker();
    console.log(bootstrap ? `KAFKA_BOOTSTRAP_SERVERS=${bootstrap}` : "not running");
    if (!bootstrap) return 1;
  } else {
    console.error("usage: deno task kafka:start | kafka:stop | kafka:status");
    return 2;
  }
  return 0;
}

await runCommand(main, "kafka: ");
