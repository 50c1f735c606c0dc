/**
 * The console-producer test helper against the test broker: what it writes (a header whose value is
 * null, a null key) is what kafkajs reads back.
 */
import assert from "node:assert/strict";
import type { KafkaMessage } from "kafkajs";
import { consoleProduce } from "../support/console_producer.ts";
import { createTopics, testKafka, uniqueId } from "../support/kafka.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test("consoleProduce writes null header values and null keys that kafkajs reads", integration, async () => {
  const { kafka, brokers } = await testKafka();
  const topic = `console-${uniqueId()}`;
  await createTopics(kafka, [topic]);
  await consoleProduce(brokers[0], topic, [
    { key: null, value: '{"a":1,"b":"x\ty"}', headers: [["trace", null], ["kind", "a:b,c"]] },
    { key: "k\u0000\u00ff", value: "second", headers: [["kind", ""]] },
    { value: null },
  ]);

  // A consumer of its own: readRecords turns header values into strings, and a null one into "null".
  const consumer = kafka.consumer({ groupId: `reader-${uniqueId()}` });
  const messages: KafkaMessage[] = [];
  const three = Promise.withResolvers<void>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        if (messages.push(message) === 3) three.resolve();
        return Promise.resolve();
      },
    });
    const timer = setTimeout(() => three.reject(new Error(`read ${messages.length} of 3 records`)), 60_000);
    await three.promise.finally(() => clearTimeout(timer));
  } finally {
    await consumer.disconnect();
  }

  const [first, second, third] = messages;
  assert.equal(first.key, null);
  assert.equal(first.value?.toString(), '{"a":1,"b":"x\ty"}');
  assert.ok("trace" in first.headers!, "the header with a null value is there");
  assert.equal(first.headers!.trace, null);
  assert.equal(first.headers!.kind?.toString(), "a:b,c");
  assert.equal(second.key?.toString(), "k\u0000\u00ff");
  assert.equal(second.value?.toString(), "second");
  assert.equal(second.headers!.kind?.toString(), "");
  assert.equal(third.key, null);
  assert.equal(third.value, null);
  assert.deepEqual(third.headers, {});
});
