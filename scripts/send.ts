/**
 * `deno task send [--count N]`: produces the old bridge's three example events (and N more) to the
 * broker at KAFKA_BOOTSTRAP_SERVERS, or to the local broker (started if need be).
 * `deno task send --topic T [--key K] --value '{…}'` produces that one event instead.
 *
 * `--format avro` writes Avro records in the schema registry's wire format instead of JSON: the
 * schema (`--schema file.avsc`) is registered under `<topic>-value` at SCHEMA_REGISTRY_URL and each
 * event, given as JSON in the shape the bridge decodes it to (a decimal as its digits, a timestamp
 * as ISO 8601 text), is written with it by the serde library's AvroSerializer. Without `--topic` it
 * writes the Avro example's payments (pipelines/examples/avro) with the schema beside that pipeline;
 * with `--topic`, `--schema` is needed. Everything is checked before anything is sent: the schema,
 * each event against it (naming the field that does not fit), the registry taking the schema.
 */
import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import { Partitioners } from "kafkajs";
import { readDotEnv } from "../src/config/dotenv.ts";
import { loadSettings, type Settings } from "../src/config/settings.ts";
import { errorMessage, FatalError, runCommand } from "../src/errors.ts";
import { type ExampleEvent, exampleEvents, examplePayments, PAYMENT_SCHEMA_FILE } from "../src/demo_events.ts";
import { ensureLocalBroker } from "../src/infra/local_broker.ts";
import { createKafka } from "../src/kafka/client.ts";

const USAGE = [
  "usage: deno task send [--count N]                          the three example events, and N more",
  "       deno task send --topic T [--key K] --value JSON     that one event",
  "       deno task send --format avro [--count N]            the Avro example's payments (needs SCHEMA_REGISTRY_URL)",
  "       deno task send --format avro --schema F.avsc --topic T [--key K] --value JSON",
];

async function main(): Promise<number | void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        count: { type: "string", default: "0" },
        topic: { type: "string" },
        key: { type: "string" },
        value: { type: "string" },
        format: { type: "string", default: "json" },
        schema: { type: "string" },
        help: { type: "boolean" },
      },
    }));
  } catch (error) {
    throw new FatalError([errorMessage(error), ...USAGE]);
  }
  if (values.help) {
    console.log(USAGE.join("\n"));
    return 0;
  }
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 0) throw new FatalError(`--count: "${values.count}" is not a whole number`);
  if ((values.topic === undefined) !== (values.value === undefined)) {
    throw new FatalError("--topic and --value go together: the one event to send, and where");
  }
  if (values.format !== "json" && values.format !== "avro") {
    throw new FatalError(`--format: "${values.format}" is not json or avro`);
  }
  const avro = values.format === "avro";
  if (values.schema !== undefined && !avro) throw new FatalError("--schema is for --format avro");
  if (avro && values.topic !== undefined && values.schema === undefined) {
    throw new FatalError("--format avro --topic: give the event's schema with --schema file.avsc");
  }
  const settings = loadSettings({ ...await readDotEnv(".env"), ...Deno.env.toObject() });
  let events: ExampleEvent[] = avro ? examplePayments(count) : exampleEvents(count);
  if (values.topic !== undefined) {
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(values.value!);
    } catch (error) {
      throw new FatalError(`--value: not JSON: ${(error as Error).message}`);
    }
    events = [{ topic: values.topic, key: values.key ?? "", value }];
  }
  // Written before anything connects to Kafka: a schema, an event or a registry that will not do stops the send.
  const bytes = avro
    ? await avroRecords(settings, values.schema ?? PAYMENT_SCHEMA_FILE, events, values.topic ? "--value" : "event")
    : events.map((event) => Buffer.from(JSON.stringify(event.value)));
  const brokers = settings.bootstrapServers ??
    [(await ensureLocalBroker({ log: (line) => console.error(`kafka: ${line}`) })).bootstrap];
  const producer = createKafka(settings, brokers).producer({
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  try {
    await producer.connect();
  } catch (error) {
    throw new FatalError(`cannot reach Kafka at ${brokers.join(",")}: ${(error as Error).message}`);
  }
  const byTopic = Map.groupBy(events.map((event, index) => ({ ...event, bytes: bytes[index] })), (e) => e.topic);
  for (const [topic, list] of byTopic) {
    for (let i = 0; i < list.length; i += 500) {
      await producer.send({
        topic,
        acks: -1,
        messages: list.slice(i, i + 500).map((event) => ({
          key: event.key || null, // --topic without --key: no key
          value: Buffer.from(event.bytes),
        })),
      });
    }
    const how = avro ? ` (Avro, ${topic}-value)` : "";
    console.log(`sent ${list.length} event${list.length === 1 ? "" : "s"} to ${topic}${how}`);
  }
  await producer.disconnect();
}

/**
 * The events as Avro records in the wire format, with the schema in `schemaFile` registered under
 * each topic's `<topic>-value`. `what` names an event in messages (`--value`, or `event 2`).
 */
async function avroRecords(
  settings: Settings,
  schemaFile: string,
  events: readonly ExampleEvent[],
  what: string,
): Promise<Uint8Array[]> {
  if (!settings.schemaRegistryUrl) {
    throw new FatalError(
      "environment:SCHEMA_REGISTRY_URL: not set: --format avro registers its schema there (deno task registry:start prints one)",
      { config: true },
    );
  }
  // The serde library is loaded only for Avro.
  const { avroMisfits, parseAvroSchema } = await import("../src/registry/avro_json.ts");
  const { avroWriter } = await import("../src/registry/avro_writer.ts");
  const { registryOptions } = await import("../src/registry/client.ts");
  let text: string;
  try {
    text = await Deno.readTextFile(schemaFile);
  } catch (error) {
    throw new FatalError(`--schema ${schemaFile}: cannot read: ${errorMessage(error)}`);
  }
  let type;
  try {
    type = parseAvroSchema(text);
  } catch (error) {
    throw new FatalError(`--schema ${schemaFile}: ${errorMessage(error)}`);
  }
  const misfits = events.flatMap((event, index) => {
    const name = what === "--value" ? what : `${what} ${index} (${event.key})`;
    return avroMisfits(type, event.value).map(({ path, reason }) =>
      `${name}${path.map((part) => `.${part}`).join("")}: ${reason} (${schemaFile})`
    );
  });
  if (misfits.length) throw new FatalError(misfits);
  const registry = registryOptions(settings);
  const writers = new Map<string, Awaited<ReturnType<typeof avroWriter>>>();
  const records: Uint8Array[] = [];
  for (const event of events) {
    try {
      let writer = writers.get(event.topic);
      if (!writer) writers.set(event.topic, writer = await avroWriter(registry, event.topic, text));
      records.push(await writer.write(event.value));
    } catch (error) {
      throw new FatalError(errorMessage(error));
    }
  }
  return records;
}

await runCommand(main);
