/**
 * `deno task registry:start` / `registry:stop` / `registry:status`: the local schema registry
 * (Apicurio Registry, Confluent-compatible API). `start` prints `SCHEMA_REGISTRY_URL=<url>` as its
 * last line.
 */
import { runCommand } from "../src/errors.ts";
import {
  defaultRegistryStateDir,
  ensureLocalRegistry,
  runningRegistry,
  stopLocalRegistry,
} from "../src/infra/local_registry.ts";

const command = Deno.args[0] ?? "start";
const log = (line: string) => console.error(`registry: ${line}`);
async function main(): Promise<number> {
  if (command === "start") {
    const registry = await ensureLocalRegistry({ log });
    if (!registry.started) log(`a schema registry already answers at ${registry.url}`);
    console.log(`SCHEMA_REGISTRY_URL=${registry.url}`);
  } else if (command === "stop") {
    log(await stopLocalRegistry() ? "stopped" : `no registry was running from ${defaultRegistryStateDir()}`);
  } else if (command === "status") {
    const url = await runningRegistry();
    console.log(url ? `SCHEMA_REGISTRY_URL=${url}` : "not running");
    if (!url) return 1;
  } else {
    console.error("usage: deno task registry:start | registry:stop | registry:status");
    return 2;
  }
  return 0;
}

await runCommand(main, "registry: ");
