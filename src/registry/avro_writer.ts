/**
 * @module
 * Avro records in the Confluent wire format, as `deno task send --format avro` writes them: the
 * schema is registered under `<topic>-value` (Confluent's TopicNameStrategy, which the bridge reads
 * by), and each value is written by the serde library's own `AvroSerializer` with that schema id
 * and the bridge's avsc options (avro_logical.ts), so a decimal may be given as its digits and a
 * timestamp as ISO 8601 text. Check values with `avroMisfits` (avro_json.ts) first: the serializer
 * refuses a value that does not fit, in its own words.
 *
 * @example
 * ```ts
 * import { avroWriter } from "./avro_writer.ts";
 * const schema = '{"type": "record", "name": "P", "fields": [{"name": "id", "type": "string"}]}';
 * try {
 *   await avroWriter({ url: "http://127.0.0.1:1/apis/ccompat/v7" }, "payments.events", schema);
 *   throw new Error("registered");
 * } catch (error) {
 *   if (!/cannot be reached/.test((error as Error).message)) throw error; // no registry on port 1
 * }
 * ```
 */
import { Buffer } from "node:buffer";
import { AvroSerializer } from "@confluentinc/schemaregistry/dist/serde/avro.js";
import { SerdeType } from "@confluentinc/schemaregistry/dist/serde/serde.js";
import { errorMessage } from "../errors.ts";
import { avroOptions } from "./avro_logical.ts";
import { registryClient, type RegistryOptions, unavailable } from "./client.ts";

/** Writes values of one topic in the wire format, with the schema registered for it. */
export interface AvroWriter {
  /** `<topic>-value`. */
  readonly subject: string;
  /** The id the registry gave the schema under the subject. */
  readonly schemaId: number;
  /** One value as a record in the wire format: a zero byte, the schema id, the Avro body. */
  write(value: unknown): Promise<Uint8Array>;
}

/**
 * Registers `schema` (an Avro schema's JSON text) under `<topic>-value` at the registry and returns
 * a writer for it. Rejects with a message that names the registry and what it said: it cannot be
 * reached, refuses the credentials, or refuses the schema (an incompatible change, for one).
 */
export async function avroWriter(options: RegistryOptions, topic: string, schema: string): Promise<AvroWriter> {
  const { client, url } = registryClient(options);
  const subject = `${topic}-value`;
  let schemaId: number;
  try {
    schemaId = await client.register(subject, { schemaType: "AVRO", schema }, false);
  } catch (error) {
    const cause = unavailable(error);
    throw new Error(
      cause
        ? `schema registry at ${url}: ${cause.message}`
        : `the schema registry at ${url} refuses the schema for ${subject}: ${errorMessage(error)}`,
    );
  }
  const serializer = new AvroSerializer(client, SerdeType.VALUE, {
    // The schema just registered, by its id: not one the serializer derives from the value.
    useSchemaId: schemaId,
    ...avroOptions(),
    // deno-lint-ignore no-explicit-any
  } as any);
  return {
    subject,
    schemaId,
    async write(value: unknown): Promise<Uint8Array> {
      let bytes: Buffer;
      try {
        bytes = await serializer.serialize(topic, value);
      } catch (error) {
        const cause = unavailable(error);
        throw cause ? new Error(`schema registry at ${url}: ${cause.message}`) : error;
      }
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
  };
}
