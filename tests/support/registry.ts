/**
 * The schema registry the integration tests use (its Confluent-compatible base URL):
 * - `SCHEMA_REGISTRY_URL` when set;
 * - else, under `deno task test`, the run's one registry: `scripts/test.ts` names a directory in
 *   `AGENTSTREAM_TEST_REGISTRY_DIR`, the first test file that asks starts the registry there (under
 *   a file lock, so test files never start two), later ones find it recorded, and the run stops it;
 * - else (`deno test` on its own) one started for this test file and stopped when it ends or dies.
 *
 * No registry starts unless a test asks for one.
 */
import { ensureLocalRegistry, throwawayRegistry } from "../../src/infra/local_registry.ts";

const log = (line: string) => console.error(`registry: ${line}`);
let registry: Promise<string> | undefined;

/** The Confluent-compatible base URL of a schema registry for tests, e.g. `http://127.0.0.1:41234/apis/ccompat/v7`. */
export function testRegistry(): Promise<string> {
  registry ??= (async () => {
    const configured = Deno.env.get("SCHEMA_REGISTRY_URL");
    if (configured) return configured.replace(/\/+$/, "");
    const shared = Deno.env.get("AGENTSTREAM_TEST_REGISTRY_DIR");
    if (shared) return await sharedRegistry(shared);
    // Tethered: it goes when this process goes, including when the run is killed.
    return (await throwawayRegistry(log)).url;
  })();
  return registry;
}

/** The run's registry in `stateDir`: started by the first caller, found by the others. */
async function sharedRegistry(stateDir: string): Promise<string> {
  await Deno.mkdir(stateDir, { recursive: true });
  const lock = await Deno.open(`${stateDir}/start.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    // Tethered to the test process: `scripts/test.ts` stops it when the run ends, and it goes with
    // the test process if that is killed first.
    const local = await ensureLocalRegistry({ stateDir, port: 0, tethered: true, log });
    return local.url;
  } finally {
    lock.close(); // releases the lock
  }
}
