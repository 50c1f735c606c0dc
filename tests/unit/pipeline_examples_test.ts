import assert from "node:assert/strict";
import { exampleProblems } from "../../src/pipeline_examples.ts";
import { parsePipelineText } from "../../src/config/load_pipelines.ts";
import { examplePayments, PAYMENT_SCHEMA_FILE } from "../../src/demo_events.ts";
import { avroMisfits, parseAvroSchema } from "../../src/registry/avro_json.ts";
import { pipeline } from "./helpers.ts";

const orders = (examples: string) =>
  pipeline(
    "name: orders\nsource: {topics: [orders.events, 'orders.*']}\nroutes:\n" +
      "  - {name: paid, match: {fields: {paid: true}}, transform: {template: 'Paid {id} by {$key}'}, invoke: {prompt_id: p}}\n" +
      "  - {name: rest, match: {headers: {x-kind: order}}, invoke: {prompt_id: q}}\n" +
      `examples:\n${examples}`,
  );

Deno.test("examples that produce their route and text have no problems", async () => {
  const p = orders(
    "  - {key: K-1, value: {paid: true, id: 7}, expect: {route: paid, text: 'Paid 7 by K-1'}}\n" +
      '  - {topic: orders.returns, headers: {x-kind: order}, value: [1], expect: {route: rest, text: "[\\n  1\\n]"}}\n' +
      "  - {value: {paid: false}, expect: {route: null}}\n" +
      "  - {value: 'not json', expect: {route: null, failure: decode}}\n" +
      "  - {value: {paid: true}, expect: {route: paid, failure: transform}}\n",
  );
  assert.deepEqual(await exampleProblems(p), []);
});

Deno.test("each kind of mismatch is one line naming the example's field", async () => {
  const p = orders(
    "  - {key: K, value: {paid: true, id: 7}, expect: {route: paid, text: 'Paid 8 by K'}}\n" +
      "  - {value: {paid: false}, expect: {route: paid}}\n" +
      "  - {key: K, value: {paid: true}, expect: {route: paid}}\n" +
      "  - {key: K, value: {paid: true, id: 1}, expect: {route: paid, failure: transform}}\n" +
      "  - {topic: invoices, value: {}, expect: {route: null}}\n" +
      "  - {value: '{oops', expect: {route: paid}}\n",
  );
  assert.deepEqual(await exampleProblems(p), [
    'unit.yaml:examples[0].expect.text: expected "Paid 8 by K", got "Paid 7 by K"',
    'unit.yaml:examples[1].expect.route: expected "paid", got no route',
    "unit.yaml:examples[2]: failed in transform: template field missing: id",
    "unit.yaml:examples[3].expect.failure: expected a transform failure, got none",
    'unit.yaml:examples[4].topic: "invoices" is not one of the pipeline\'s source topics',
    "unit.yaml:examples[5]: failed in decode: value is not valid JSON: Expected property name or '}' in JSON at position 1 (line 1 column 2)",
  ]);
});

Deno.test("an example of a pipeline whose topics are all globs must name its topic", async () => {
  const p = pipeline(
    "name: g\nsource: {topics: ['orders.*']}\nroutes: [{name: r, invoke: {prompt_id: p}}]\n" +
      "examples: [{value: {}, expect: {route: r}}]\n",
  );
  assert.deepEqual(await exampleProblems(p), [
    "unit.yaml:examples[0].topic: every source topic is a glob: name the example's topic",
  ]);
});

const PAYMENT_SCHEMA = {
  type: "record",
  name: "Payment",
  namespace: "shop",
  fields: [
    { name: "id", type: "long" },
    { name: "status", type: { type: "enum", name: "Status", symbols: ["CAPTURED", "FAILED"] } },
    { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 8, scale: 2 } },
    { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
    { name: "note", type: ["null", "string"], default: null },
  ],
};

/** An Avro pipeline in a directory of its own, beside its schema file `payment.avsc`. */
async function avroPipeline(examples: string, schema: string = JSON.stringify(PAYMENT_SCHEMA)) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/payment.avsc`, schema);
  const yaml = "name: payments\nsource: {topics: [payments.events], format: avro}\nroutes:\n" +
    "  - {name: r, transform: {template: '{id} {status} {amount} at {at}: {note}'}, invoke: {prompt_id: p}}\n" +
    `examples:\n${examples}`;
  const { pipelines, problems } = parsePipelineText(`${dir}/payments.yaml`, yaml, {}, {
    maxRetries: 1,
    retryDelayMs: 1,
  });
  assert.deepEqual(problems, []);
  return { pipeline: pipelines[0], dir };
}

Deno.test("an Avro example is written and read back with its schema: the routes see what a real record gives", async () => {
  const value = "{id: '9007199254740993', status: CAPTURED, amount: '12.5', at: '2025-01-12T11:00:00+01:00'}";
  const { pipeline } = await avroPipeline(
    `  - {schema: payment.avsc, value: ${value}, expect: {route: r, text: '9007199254740993 CAPTURED 12.50 at 2025-01-12T10:00:00.000Z: null'}}\n` +
      `  - {schema: payment.avsc, value: {id: 1, status: FAILED, amount: 3, at: 0, note: declined}, expect: {route: r, text: '1 FAILED 3.00 at 1970-01-01T00:00:00.000Z: declined'}}\n` +
      // Without its schema an example is taken as it is given, as before.
      `  - {value: {id: 1, status: FAILED, amount: 3, at: 0, note: x}, expect: {route: r, text: '1 FAILED 3 at 0: x'}}\n`,
  );
  assert.deepEqual(await exampleProblems(pipeline), []);
});

Deno.test("an Avro example that does not fit its schema: one line a field, naming it and what it must be", async () => {
  const { pipeline, dir } = await avroPipeline(
    "  - {schema: payment.avsc, value: {id: 1.5, status: SETTLED, amount: '1.234', at: '2025-01-12T10:00:00', note: 7}, expect: {route: r}}\n" +
      "  - {schema: payment.avsc, value: {id: 1, status: FAILED, amount: 1, at: 0, extra: true}, expect: {route: r}}\n" +
      "  - {schema: payment.avsc, value: {status: FAILED, at: 0}, expect: {route: r}}\n",
  );
  assert.deepEqual(await exampleProblems(pipeline), [
    `${dir}/payments.yaml:examples[0].value.id: 1.5 is not a long (a whole number, or its digits as a string)`,
    `${dir}/payments.yaml:examples[0].value.status: "SETTLED" is not one of CAPTURED, FAILED`,
    `${dir}/payments.yaml:examples[0].value.amount: "1.234" is not a decimal (digits, at most 2 after the point, 8 in all)`,
    `${dir}/payments.yaml:examples[0].value.at: "2025-01-12T10:00:00" is not a timestamp-millis (ISO 8601 with its zone, e.g. 2025-01-12T10:00:00Z)`,
    `${dir}/payments.yaml:examples[0].value.note: 7 is not one of: null; a string`,
    `${dir}/payments.yaml:examples[1].value: has fields the schema has not: extra`,
    `${dir}/payments.yaml:examples[2].value.id: is missing`,
    `${dir}/payments.yaml:examples[2].value.amount: is missing`,
  ]);
});

Deno.test("a window's Avro events are each checked and read back", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/payment.avsc`, JSON.stringify(PAYMENT_SCHEMA));
  const yaml = "name: w\nsource: {topics: [payments.events], format: avro}\nroutes:\n" +
    "  - {name: r, window: {size: 1m}, transform: {each: '{amount}'}, invoke: {prompt_id: p}}\n" +
    "examples:\n" +
    '  - {schema: payment.avsc, events: [{id: 1, status: FAILED, amount: 1, at: 0}, {id: 2, status: FAILED, amount: 2, at: 0}], expect: {route: r, text: "1.00\\n2.00"}}\n' +
    "  - {schema: payment.avsc, events: [{id: 1, status: FAILED, amount: 1, at: 0}, {id: 2, status: FAILED, amount: x, at: 0}], expect: {route: r}}\n";
  const [pipeline] = parsePipelineText(`${dir}/w.yaml`, yaml, {}, { maxRetries: 1, retryDelayMs: 1 }).pipelines;
  assert.deepEqual(await exampleProblems(pipeline), [
    `${dir}/w.yaml:examples[1].events[1].amount: "x" is not a decimal (digits, at most 2 after the point, 8 in all)`,
  ]);
});

Deno.test("an example's schema file that is missing, not JSON or not Avro is named", async () => {
  const example = "  - {schema: payment.avsc, value: {}, expect: {route: r}}\n";
  const missing = await avroPipeline("  - {schema: nowhere.avsc, value: {}, expect: {route: r}}\n");
  const [notFound] = await exampleProblems(missing.pipeline);
  assert.match(
    notFound,
    new RegExp(`^${missing.dir}/payments.yaml:examples\\[0\\]\\.schema: cannot read ${missing.dir}/nowhere.avsc: `),
  );
  const notJson = await avroPipeline(example, "{type: record");
  assert.deepEqual(await exampleProblems(notJson.pipeline), [
    `${notJson.dir}/payments.yaml:examples[0].schema: ${notJson.dir}/payment.avsc is not JSON: Expected property name or '}' in JSON at position 1 (line 1 column 2)`,
  ]);
  const notAvro = await avroPipeline(
    example,
    '{"type": "record", "name": "P", "fields": [{"name": "a", "type": "decimal"}]}',
  );
  assert.deepEqual(await exampleProblems(notAvro.pipeline), [
    `${notAvro.dir}/payments.yaml:examples[0].schema: ${notAvro.dir}/payment.avsc is not an Avro schema: undefined type name: decimal`,
  ]);
});

Deno.test("the payments deno task send --format avro writes fit the shipped Avro example's schema", async () => {
  const type = parseAvroSchema(await Deno.readTextFile(PAYMENT_SCHEMA_FILE));
  const payments = examplePayments(3);
  assert.equal(payments.length, 6);
  assert.deepEqual(payments.flatMap((payment) => avroMisfits(type, payment.value)), []);
});
