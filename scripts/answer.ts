/**
 * `deno task answer <task-id> --approve | --deny | --text "…" [--topic <answers topic>]`: answers an
 * agent's task that stopped to ask, as its question's envelope says (`reply.task_id`, `answer_to`),
 * naming the question it answers (`answer_to.question`) when it looked the task up.
 * `--approve` / `--deny` decide every approval the task waits on (Archestra's tool approvals; to a
 * task that asks in text, the word `approved` or `denied`); `--text` sends a text. Without
 * `--topic`, the answers topic is looked up in the bridge's tasks topic (KAFKA_TASKS_TOPIC, for
 * KAFKA_GROUP_ID). Writes to KAFKA_BOOTSTRAP_SERVERS, or the local broker, as `deno task send` does.
 */
import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import { Partitioners } from "kafkajs";
import { readDotEnv } from "../src/config/dotenv.ts";
import { loadSettings } from "../src/config/settings.ts";
import { FatalError, runCommand } from "../src/errors.ts";
import { ensureLocalBroker } from "../src/infra/local_broker.ts";
import { createKafka } from "../src/kafka/client.ts";
import { KafkaTable } from "../src/kafka/compacted_table.ts";
import { AskingTasks } from "../src/a2a/asking_tasks.ts";

const USAGE = 'usage: deno task answer <task-id> --approve | --deny | --text "…" [--topic <answers topic>]';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      approve: { type: "boolean" },
      deny: { type: "boolean" },
      text: { type: "string" },
      topic: { type: "string" },
    },
  });
  const [taskId, ...extra] = positionals;
  const given = [values.approve, values.deny, values.text !== undefined].filter(Boolean).length;
  if (!taskId || extra.length || given !== 1) throw new FatalError([USAGE, "give one task id and one answer"]);
  const body: Record<string, unknown> = values.text !== undefined
    ? { text: values.text }
    : { approved: values.approve === true };

  const settings = loadSettings({ ...await readDotEnv(".env"), ...Deno.env.toObject() });
  const brokers = settings.bootstrapServers ??
    [(await ensureLocalBroker({ log: (line) => console.error(`kafka: ${line}`) })).bootstrap];
  const kafka = createKafka(settings, brokers);
  let topic = values.topic;
  if (!topic) {
    const table = new KafkaTable({ kafka, topic: settings.tasksTopic, groupId: settings.groupId });
    try {
      await table.start();
      const waiting = await new AskingTasks(table).find(taskId);
      topic = waiting?.answersTopic;
      // Named, the question this answers: should the task ask anew meanwhile, the answer is refused.
      if (waiting) body.question = waiting.question;
    } catch (error) {
      throw new FatalError(`cannot read ${settings.tasksTopic} at ${brokers.join(",")}: ${(error as Error).message}`);
    } finally {
      await table.stop();
    }
    if (!topic) {
      throw new FatalError([
        `no task ${taskId} waits for an answer in ${settings.tasksTopic} (consumer group ${settings.groupId})`,
        "check the id and KAFKA_GROUP_ID, or give --topic to write the answer anyway",
      ]);
    }
  }
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  try {
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ key: taskId, value: Buffer.from(JSON.stringify(body)) }] });
  } catch (error) {
    throw new FatalError(`cannot write the answer to ${topic}: ${(error as Error).message}`);
  } finally {
    await producer.disconnect();
  }
  console.log(`answered task ${taskId} on ${topic}: ${JSON.stringify(body)}`);
}

await runCommand(main);
