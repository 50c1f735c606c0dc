/**
 * The schema registry the integration tests use (its Confluent-compatible base URL):
 * - `SCHEMA_REGISTRY_URL` when set;
 * - else, under `deno task test`, the run's one registry: `scripts/test.ts` names a directory in
 *   `AGENTSTREAM_TEST_REGISTRY_DIR`, the first test file that asks starts the registry there (under
 *   a file lock, so test files never start two), later ones find it recorded, and the run stops it;
 * - else (`deno test` on its own) one started for this test file and stopped when it ends or dies.
 *
 * No registry starts unless a test asks for one.
 *
 * Records for the registry are written by Confluent's serde library ({@link serdeClient},
 * {@link avroWriter}), never by the bridge's code: what a producer on a registry-backed platform writes.
 */
import type { Buffer } from "node:buffer";
import http from "node:http";
import { SchemaRegistryClient } from "@confluentinc/schemaregistry/dist/schemaregistry-client.js";
import { AvroSerializer } from "@confluentinc/schemaregistry/dist/serde/avro.js";
import { SerdeType } from "@confluentinc/schemaregistry/dist/serde/serde.js";
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

/** A client of the serde library on `url`, set up as the bridge's own (a connection each request: see src/registry/schema_registry.ts). */
export function serdeClient(url: string): SchemaRegistryClient {
  return new SchemaRegistryClient({
    baseURLs: [url],
    createAxiosDefaults: { timeout: 10_000, httpAgent: new http.Agent({ keepAlive: false }) },
  });
}

/**
 * Registers the Avro `schema` under `<topic>-value` and returns the serde library's own serializer
 * for `topic`'s values: a value in, the record's bytes in the wire format out.
 */
export async function avroWriter(
  url: string,
  topic: string,
  schema: object,
): Promise<(value: object) => Promise<Buffer>> {
  const client = serdeClient(url);
  await client.register(`${topic}-value`, { schemaType: "AVRO", schema: JSON.stringify(schema) });
  const serializer = new AvroSerializer(client, SerdeType.VALUE, { useLatestVersion: true });
  return (value) => serializer.serialize(topic, value);
}
