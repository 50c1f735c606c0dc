/**
 * @module
 * An Avro record given as JSON, where a person writes one: a pipeline example's `value` beside its
 * `.avsc`, an event for `deno task send --format avro`. {@link avroMisfits} says where it does not
 * fit the schema, one field a line; {@link avroAsDecoded} writes it with the schema and reads it
 * back as the bridge reads a record (the same avsc options: avro_logical.ts; the same plain JSON
 * data: values.ts), so that what an example's templates see is what a real record would give them.
 * The JSON is the decoded value's shape: a decimal as its digits (`"12.50"`), a timestamp as ISO
 * 8601 text with its zone, an enum as its symbol, a `["null", "string"]` union as the string or
 * null, a union of several records as `{ "<full name>": … }`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { avroAsDecoded, avroMisfits, parseAvroSchema } from "./avro_json.ts";
 * const type = parseAvroSchema(JSON.stringify({
 *   type: "record",
 *   name: "Payment",
 *   fields: [
 *     { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 8, scale: 2 } },
 *     { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
 *   ],
 * }));
 * assert.deepEqual(avroAsDecoded(type, { amount: "12.5", at: "2025-01-12T10:00:00Z" }), {
 *   amount: "12.50",
 *   at: "2025-01-12T10:00:00.000Z",
 * });
 * assert.deepEqual(avroMisfits(type, { amount: "12.505" }), [
 *   { path: ["amount"], reason: '"12.505" is not a decimal (digits, at most 2 after the point, 8 in all)' },
 *   { path: ["at"], reason: "is missing" },
 * ]);
 * ```
 */
import avsc from "avsc";
import { errorMessage } from "../errors.ts";
import { avroOptions } from "./avro_logical.ts";
import { plainValue } from "./values.ts";

/** A parsed Avro schema. */
export type AvroType = avsc.Type;

/** Where a value does not fit: the field's path (record fields, array indexes, map keys) and why. */
export interface AvroMisfit {
  path: string[];
  reason: string;
}

/** Parses an Avro schema's JSON text (an `.avsc` file) with the bridge's options; throws saying why it is none. */
export function parseAvroSchema(text: string): AvroType {
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (error) {
    throw new Error(`not JSON: ${errorMessage(error)}`);
  }
  try {
    return avsc.Type.forSchema(schema as avsc.Schema, avroOptions());
  } catch (error) {
    throw new Error(`not an Avro schema: ${errorMessage(error)}`);
  }
}

/** Every place `value` does not fit `type` (fields the schema has not included); empty where it fits. */
export function avroMisfits(type: AvroType, value: unknown): AvroMisfit[] {
  const misfits: AvroMisfit[] = [];
  type.isValid(value, {
    noUndeclaredFields: true,
    errorHook: (path: string[], any: unknown, at: AvroType) => misfits.push({ path, reason: misfit(any, at) }),
  });
  return misfits;
}

/**
 * `value` as the bridge reads a record of `type` that holds it: written with the schema, read back
 * with the bridge's options, as plain JSON data. Throws where it does not fit (see {@link avroMisfits}).
 */
export function avroAsDecoded(type: AvroType, value: unknown): unknown {
  return plainValue(type.fromBuffer(type.toBuffer(value)));
}

/** Why `value` is no `type`. */
function misfit(value: unknown, type: AvroType): string {
  if (value === undefined) return "is missing";
  const schema = type.schema() as { type: string; fields?: { name: string }[] };
  if (schema.type === "record" && value !== null && typeof value === "object" && !Array.isArray(value)) {
    const known = new Set(schema.fields!.map((field) => field.name));
    const extra = Object.keys(value).filter((name) => !known.has(name));
    if (extra.length) return `has fields the schema has not: ${extra.join(", ")}`;
  }
  return `${show(value)} is not ${expected(type)}`;
}

/** What a value of `type` is, in a person's words. */
function expected(type: AvroType): string {
  // deno-lint-ignore no-explicit-any
  const schema = type.schema({ exportAttrs: true }) as any;
  if (typeof schema === "string") return PRIMITIVES[schema] ?? schema;
  switch (schema.logicalType) {
    case "decimal":
      return `a decimal (digits, at most ${schema.scale ?? 0} after the point` +
        `${schema.precision ? `, ${schema.precision} in all` : ""})`;
    case "timestamp-millis":
    case "timestamp-micros":
      return `a ${schema.logicalType} (ISO 8601 with its zone, e.g. 2025-01-12T10:00:00Z)`;
    case "date":
      return "a date (YYYY-MM-DD)";
  }
  if (schema.logicalType) return `a ${schema.logicalType} (${PRIMITIVES[schema.type] ?? schema.type})`;
  if (Array.isArray(schema)) {
    // deno-lint-ignore no-explicit-any
    return `one of: ${(type as any).types.map(expected).join("; ")}`;
  }
  switch (schema.type) {
    case "enum":
      return `one of ${schema.symbols.join(", ")}`;
    case "record":
    case "error":
      return `a record ${schema.name}`;
    case "fixed":
      return `${schema.size} bytes (fixed ${schema.name})`;
    case "array":
      return "an array";
    case "map":
      return "a map (an object)";
  }
  return PRIMITIVES[schema.type] ?? schema.type;
}

const PRIMITIVES: Record<string, string> = {
  null: "null",
  boolean: "true or false",
  int: "an int (32 bits)",
  long: "a long (a whole number, or its digits as a string)",
  float: "a float",
  double: "a double",
  bytes: "bytes",
  string: "a string",
};

function show(value: unknown): string {
  try {
    return JSON.stringify(value, (_, item) => typeof item === "bigint" ? String(item) : item) ?? String(value);
  } catch {
    return String(value);
  }
}
