import assert from "node:assert/strict";
import { exampleProblems } from "../../src/pipeline_examples.ts";
import { pipeline } from "./helpers.ts";

const orders = (examples: string) =>
  pipeline(
    "name: orders\nsource: {topics: [orders.events, 'orders.*']}\nroutes:\n" +
      "  - {name: paid, match: {fields: {paid: true}}, transform: {template: 'Paid {id} by {$key}'}, invoke: {prompt_id: p}}\n" +
      "  - {name: rest, match: {headers: {x-kind: order}}, invoke: {prompt_id: q}}\n" +
      `examples:\n${examples}`,
  );

Deno.test("examples that produce their route and text have no problems", () => {
  const p = orders(
    "  - {key: K-1, value: {paid: true, id: 7}, expect: {route: paid, text: 'Paid 7 by K-1'}}\n" +
      '  - {topic: orders.returns, headers: {x-kind: order}, value: [1], expect: {route: rest, text: "[\\n  1\\n]"}}\n' +
      "  - {value: {paid: false}, expect: {route: null}}\n" +
      "  - {value: 'not json', expect: {route: null, failure: decode}}\n" +
      "  - {value: {paid: true}, expect: {route: paid, failure: transform}}\n",
  );
  assert.deepEqual(exampleProblems(p), []);
});

Deno.test("each kind of mismatch is one line naming the example's field", () => {
  const p = orders(
    "  - {key: K, value: {paid: true, id: 7}, expect: {route: paid, text: 'Paid 8 by K'}}\n" +
      "  - {value: {paid: false}, expect: {route: paid}}\n" +
      "  - {key: K, value: {paid: true}, expect: {route: paid}}\n" +
      "  - {key: K, value: {paid: true, id: 1}, expect: {route: paid, failure: transform}}\n" +
      "  - {topic: invoices, value: {}, expect: {route: null}}\n" +
      "  - {value: '{oops', expect: {route: paid}}\n",
  );
  assert.deepEqual(exampleProblems(p), [
    'unit.yaml:examples[0].expect.text: expected "Paid 8 by K", got "Paid 7 by K"',
    'unit.yaml:examples[1].expect.route: expected "paid", got no route',
    "unit.yaml:examples[2]: failed in transform: template field missing: id",
    "unit.yaml:examples[3].expect.failure: expected a transform failure, got none",
    'unit.yaml:examples[4].topic: "invoices" is not one of the pipeline\'s source topics',
    "unit.yaml:examples[5]: failed in decode: value is not valid JSON: Expected property name or '}' in JSON at position 1 (line 1 column 2)",
  ]);
});

Deno.test("an example of a pipeline whose topics are all globs must name its topic", () => {
  const p = pipeline(
    "name: g\nsource: {topics: ['orders.*']}\nroutes: [{name: r, invoke: {prompt_id: p}}]\n" +
      "examples: [{value: {}, expect: {route: r}}]\n",
  );
  assert.deepEqual(exampleProblems(p), [
    "unit.yaml:examples[0].topic: every source topic is a glob: name the example's topic",
  ]);
});
