/**
 * `deno task send [--count N]`: produces the old bridge's three example events (and N more) to the
 * broker at KAFKA_BOOTSTRAP_SERVERS, or to the local broker (started if need be).
 * `deno task send --topic T [--key K] --value '{…}'` produces that one event instead.
 */
import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import { Partitioners } from "kafkajs";
import { readDotEnv } from "../src/config/dotenv.ts";
import { loadSettings } from "../src/config/settings.ts";
import { FatalError, runCommand } from "../src/errors.ts";
import { exampleEvents } from "../src/demo_events.ts";
import { ensureLocalBroker } from "../src/infra/local_broker.ts";
import { createKafka } from "../src/kafka/client.ts";

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      count: { type: "string", default: "0" },
      topic: { type: "string" },
      key: { type: "string" },
      value: { type: "string" },
    },
  });
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 0) throw new FatalError(`--count: "${values.count}" is not a whole number`);
  if ((values.topic === undefined) !== (values.value === undefined)) {
    throw new FatalError("--topic and --value go together: the one event to send, and where");
  }
  const settings = loadSettings({ ...await readDotEnv(".env"), ...Deno.env.toObject() });
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
  let events = exampleEvents(count);
  if (values.topic !== undefined) {
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(values.value!);
    } catch (error) {
      throw new FatalError(`--value: not JSON: ${(error as Error).message}`);
    }
    events = [{ topic: values.topic, key: values.key ?? "", value }];
  }
  const byTopic = Map.groupBy(events, (event) => event.topic);
  for (const [topic, list] of byTopic) {
    for (let i = 0; i < list.length; i += 500) {
      await producer.send({
        topic,
        acks: -1,
        messages: list.slice(i, i + 500).map((event) => ({
          key: event.key || null, // --topic without --key: no key
          value: Buffer.from(JSON.stringify(event.value)),
        })),
      });
    }
    console.log(`sent ${list.length} event${list.length === 1 ? "" : "s"} to ${topic}`);
  }
  await producer.disconnect();
}

await runCommand(main);
