import assert from "node:assert/strict";
import { jsonText, jsonTextIterative } from "../../src/util/json_text.ts";

/** `depth` arrays, one inside the other, as JSON.parse builds them (it does not recurse). */
function deepArrays(depth: number): unknown[] {
  return JSON.parse("[".repeat(depth) + "]".repeat(depth));
}

/** `depth` objects `{"a": …}`, one inside the other, around `leaf`. */
function deepObjects(depth: number, leaf: unknown = 1): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let node = root;
  for (let i = 1; i < depth; i++) node = (node.a = {}) as Record<string, unknown>;
  node.a = leaf;
  return root;
}

class Point {
  x = 1;
  y = 2;
  get length(): number {
    return Math.hypot(this.x, this.y);
  }
}

const shared = { s: 1 };
const withOwnGetter = Object.defineProperty({ a: 1 }, "g", { get: () => [2], enumerable: true });
const withHiddenProperty = Object.defineProperty({ a: 1 }, "hidden", { value: 2, enumerable: false });
const nullPrototype = Object.assign(Object.create(null), { b: 1, a: [null] });
const sparse = [1, , 3];
const withSymbolKey = { [Symbol("k")]: 1, a: 2 };
const sameInstant = new Date(Date.UTC(2026, 0, 12, 10, 30));

const values: [string, unknown][] = [
  ["null", null],
  ["true", true],
  ["false", false],
  ["numbers", [0, -0, 1.5, -2e-7, 1e21, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity]],
  ["escapes", 'quote " backslash \\ slash / \b\f\n\r\t \u0000 \u001f \u007f'],
  ["unicode", "é ß 中文 😀 \u2028 \u2029 lone \ud800 and \udc00"],
  ["empty string", ""],
  ["empty array", []],
  ["empty object", {}],
  ["nested empties", { a: [], b: {}, c: [[], {}], d: [{ e: [] }] }],
  ["nested arrays", [1, [2, [3, [4, []]]], "x"]],
  ["message-like", {
    id: "K-1",
    parts: [{ kind: "text", text: "hello\nworld" }, { kind: "data", data: { n: 1, ok: true, none: null } }],
    meta: { tags: ["a", "b"], score: 0.25 },
  }],
  ["undefined, function, symbol in an array", [undefined, () => 1, Symbol("s"), 1]],
  ["undefined, function, symbol in an object", { u: undefined, f() {}, s: Symbol("s") }],
  ["first members omitted", { u: undefined, f: () => 1, a: 1, v: undefined, b: [undefined] }],
  ["sparse array", sparse],
  ["key escapes and order", { 'a"b': 1, "": 2, "ключ": 3, "\n": 4, "2": 5, "1": 6, z: 7 }],
  ["symbol keys", withSymbolKey],
  ["null prototype", nullPrototype],
  ["class instance, getter on prototype", new Point()],
  ["own enumerable getter", withOwnGetter],
  ["non-enumerable property", withHiddenProperty],
  ["same object twice (not a cycle)", [shared, { a: shared, b: shared }]],
  ["Date", sameInstant],
  ["Dates inside", { at: sameInstant, list: [sameInstant, { at: sameInstant }] }],
  ["toJSON gets its key", {
    a: { toJSON: (key: string) => `key ${key}` },
    b: [{ toJSON: (key: string) => `index ${key}` }],
  }],
  ["top-level toJSON gets an empty key", { toJSON: (key: string) => ({ key }) }],
  ["toJSON returning structures", { a: { toJSON: () => ({ b: [1, sameInstant, { toJSON: () => "c" }] }) } }],
  ["toJSON returning undefined", { a: { toJSON: () => undefined }, b: [{ toJSON: () => undefined }], c: 1 }],
  ["boxed primitives", [new Number(3), new String("s"), new Boolean(false), Object(Symbol("s")), {
    n: new Number(NaN),
  }]],
  ["Map, Set, RegExp, Error", [new Map([[1, 2]]), new Set([1]), /x/g, new Error("e")]],
  ["typed array", new Uint8Array([1, 2, 3])],
  ["array with extra property", Object.assign([1, 2], { extra: 3 })],
];

Deno.test("jsonText() gives JSON.stringify's text for varied values, and so does the iterative renderer", () => {
  for (const indent of [0, 2]) {
    for (const [name, value] of values) {
      const expected = JSON.stringify(value, null, indent);
      assert.equal(jsonText(value, indent), expected, `${name}, indent ${indent}`);
      assert.equal(jsonTextIterative(value, indent), expected, `${name}, indent ${indent}, iterative`);
    }
  }
});

Deno.test("the iterative renderer clamps indent as JSON.stringify does", () => {
  const value = { a: [1, { b: [] }], c: {} };
  for (const indent of [-3, 0, 1, 1.9, 4, 10, 11, 50, Infinity, -Infinity, NaN]) {
    assert.equal(jsonTextIterative(value, indent), JSON.stringify(value, null, indent), `indent ${indent}`);
  }
});

Deno.test("jsonText() renders a top level that JSON.stringify leaves undefined as null", () => {
  for (const value of [undefined, () => 1, Symbol("s"), { toJSON: () => undefined }]) {
    assert.equal(JSON.stringify(value), undefined);
    assert.equal(jsonText(value), "null");
    assert.equal(jsonText(value, 2), "null");
    assert.equal(jsonTextIterative(value), "null");
  }
});

Deno.test("jsonText() renders 6,000 nested arrays and objects, where JSON.stringify overflows", () => {
  for (const deep of [deepArrays(6_000), JSON.parse('{"a":'.repeat(6_000) + "1" + "}".repeat(6_000))]) {
    assert.throws(() => JSON.stringify(deep, null, 2), RangeError, "the problem this solves");
    const text = jsonText(deep, 2);
    const lines = text.split("\n");
    // An empty innermost array shares its line; the innermost object holds `"a": 1` on its own line.
    assert.equal(lines.length, Array.isArray(deep) ? 2 * 6_000 - 1 : 2 * 6_000 + 1);
    assert.ok(text.startsWith(Array.isArray(deep) ? "[\n  [\n    [" : '{\n  "a": {\n    "a": {'));
    assert.ok(text.endsWith(Array.isArray(deep) ? "\n    ]\n  ]\n]" : "\n    }\n  }\n}"));
    // Round trip: compact JSON.stringify copes with plain data at this depth, JSON.parse too.
    assert.equal(JSON.stringify(JSON.parse(text)), JSON.stringify(deep));
    assert.equal(jsonText(deep), JSON.stringify(deep));
  }
});

Deno.test("jsonText() renders 100,000 nested arrays and objects compactly in well under a second", () => {
  const depth = 100_000;
  const arrays = deepArrays(depth);
  const objects = deepObjects(depth, new Date(0)); // toJSON takes V8 off its non-recursive path
  assert.throws(() => JSON.stringify(objects), RangeError);
  const started = performance.now();
  const arrayText = jsonTextIterative(arrays);
  const objectText = jsonText(objects);
  const elapsed = performance.now() - started;
  assert.equal(arrayText, "[".repeat(depth) + "]".repeat(depth));
  assert.equal(objectText, '{"a":'.repeat(depth) + '"1970-01-01T00:00:00.000Z"' + "}".repeat(depth));
  assert.ok(elapsed < 1_000, `took ${elapsed.toFixed(0)} ms`);
});

Deno.test("jsonText() alternates arrays and objects at depth 100,000", () => {
  const depth = 100_000;
  let value: unknown = { toJSON: () => [] };
  let expected = "[]";
  for (let i = 0; i < depth; i++) {
    value = i % 2 ? [null, value] : { k: value, u: undefined };
    expected = i % 2 ? `[null,${expected}]` : `{"k":${expected}}`;
  }
  assert.equal(jsonText(value), expected);
});

Deno.test("indented text past the engine's longest string throws RangeError", () => {
  // 100,000 levels at indent 2 would be about 2 × 10^10 characters.
  assert.throws(() => jsonText(deepArrays(100_000), 2), RangeError);
});

Deno.test("jsonText() throws TypeError on cycles, near the top and past JSON.stringify's depth", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.throws(() => jsonText(cyclic), TypeError);
  assert.throws(() => jsonTextIterative(cyclic), TypeError);
  const list: unknown[] = [];
  list.push([list]);
  assert.throws(() => jsonTextIterative(list, 2), TypeError);

  const deep = deepObjects(10_000, null);
  let node = deep;
  while (node.a !== null) node = node.a as Record<string, unknown>;
  node.a = { back: deep };
  assert.throws(() => JSON.stringify(deep, null, 2), RangeError);
  assert.throws(() => jsonText(deep, 2), TypeError);
});

Deno.test("jsonText() throws TypeError on BigInt, unless BigInt.prototype.toJSON says otherwise", () => {
  for (const value of [1n, { a: [1, 2n] }, Object(3n), deepObjects(10_000, 4n)]) {
    assert.throws(() => jsonText(value), TypeError);
    assert.throws(() => jsonText(value, 2), TypeError);
    assert.throws(() => jsonTextIterative(value), TypeError);
  }
  Object.defineProperty(BigInt.prototype, "toJSON", {
    value(this: bigint) {
      return this.toString();
    },
    configurable: true,
  });
  try {
    const value = { a: [1, 2n], b: Object(3n) };
    assert.equal(jsonText(value), JSON.stringify(value));
    assert.equal(jsonTextIterative(value, 2), JSON.stringify(value, null, 2));
    assert.equal(jsonText(deepObjects(10_000, 4n)), '{"a":'.repeat(10_000) + '"4"' + "}".repeat(10_000));
  } finally {
    delete (BigInt.prototype as { toJSON?: unknown }).toJSON;
  }
});
