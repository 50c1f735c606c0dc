/**
 * @module
 * How a record decoded with its registered schema becomes the value templates, `match` and windows
 * read: plain JSON data. Avro's `decimal` becomes a string of its digits (`"1234.56"`, no precision
 * lost), `timestamp-millis` / `timestamp-micros` an ISO 8601 string, `date` a `YYYY-MM-DD` string;
 * `bytes` and `fixed` become base64 text; a `long` beyond 2^53, Protobuf's 64-bit integers, become a
 * number where it is exact and a string where it is not; enums stay their symbol (Avro) or number
 * (Protobuf); unions are their value, and a union of several records is `{ "<full name>": value }`,
 * as Avro's JSON encoding writes it; record classes become plain objects.
 *
 * @example
 * ```ts
 * import { Buffer } from "node:buffer";
 * import { plainValue } from "./values.ts";
 * const value = plainValue({ blob: Buffer.from([0xde, 0xad]), at: new Date(0), big: 2n ** 60n, n: 3n, $typeName: "x.Y" });
 * if (JSON.stringify(value) !== '{"blob":"3q0=","at":"1970-01-01T00:00:00.000Z","big":"1152921504606846976","n":3}') {
 *   throw new Error(JSON.stringify(value));
 * }
 * ```
 */
import { Buffer } from "node:buffer";

/** `value` as plain JSON data (see the module comment). */
export function plainValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === "bigint") {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : String(value);
  }
  if (value instanceof Uint8Array) {
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
  }
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(plainValue);
  if (value instanceof Map) return Object.fromEntries([...value].map(([key, item]) => [String(key), plainValue(item)]));
  if (typeof value === "object") {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // Protobuf-ES messages name their type in a field of their own.
      if (key === "$typeName" || item === undefined) continue;
      result[key] = plainValue(item);
    }
    return result;
  }
  return value;
}

/** The digits of an Avro `decimal` (big-endian two's complement, unscaled) at `scale`. */
export function decimalText(bytes: Uint8Array, scale: number): string {
  let unscaled = 0n;
  for (const byte of bytes) unscaled = (unscaled << 8n) | BigInt(byte);
  if (bytes.length && bytes[0] & 0x80) unscaled -= 1n << BigInt(8 * bytes.length);
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, "0");
  const text = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return negative ? `-${text}` : text;
}
