/**
 * @module
 * Avro's logical types as the bridge reads them (avsc ships none): `decimal` as a string of its
 * digits, `timestamp-millis` and `timestamp-micros` as ISO 8601 strings, `date` as `YYYY-MM-DD`.
 * Given to the Avro deserializer as avsc's `logicalTypes` option; see `values.ts` for the rest.
 *
 * @example
 * ```ts
 * import avsc from "avsc";
 * import { Buffer } from "node:buffer";
 * import { LOGICAL_TYPES } from "./avro_logical.ts";
 * const type = avsc.Type.forSchema({
 *   type: "record", name: "Payment", fields: [
 *     { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 10, scale: 2 } },
 *     { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
 *   ],
 * // deno-lint-ignore no-explicit-any
 * } as any, { logicalTypes: LOGICAL_TYPES });
 * const written = avsc.Type.forSchema({ type: "record", name: "Payment", fields: [
 *   { name: "amount", type: "bytes" }, { name: "at", type: "long" },
 * ] }).toBuffer({ amount: Buffer.from([0x01, 0xe2, 0x40]), at: 0 });
 * const read = type.fromBuffer(written);
 * if (read.amount !== "1234.56" || read.at !== "1970-01-01T00:00:00.000Z") throw new Error(JSON.stringify(read));
 * ```
 */
import avsc from "avsc";
import { Buffer } from "node:buffer";
import { decimalText } from "./values.ts";

const DAY_MS = 86_400_000;

class DecimalType extends avsc.types.LogicalType {
  readonly #scale: number;
  // deno-lint-ignore no-explicit-any
  constructor(attrs: any, options: any) {
    super(attrs, options);
    this.#scale = attrs.scale ?? 0;
  }
  override _fromValue(value: Uint8Array): string {
    return decimalText(value, this.#scale);
  }
  override _toValue(value: string | Uint8Array): Uint8Array {
    if (typeof value !== "string") return value;
    // Digits back to big-endian two's complement, at the schema's scale.
    const [whole, fraction = ""] = value.replace(/^-/, "").split(".");
    let unscaled = BigInt(whole + fraction.padEnd(this.#scale, "0").slice(0, this.#scale));
    if (value.startsWith("-")) unscaled = -unscaled;
    const bytes: number[] = [];
    for (let rest = unscaled;; rest >>= 8n) {
      bytes.unshift(Number(rest & 0xffn));
      if ((rest === 0n || rest === -1n) && (bytes[0] & 0x80) === (unscaled < 0n ? 0x80 : 0)) break;
    }
    return Buffer.from(bytes);
  }
}

class TimestampMillis extends avsc.types.LogicalType {
  override _fromValue(value: number): string {
    return new Date(value).toISOString();
  }
  override _toValue(value: string | number): number {
    return typeof value === "string" ? Date.parse(value) : value;
  }
}

class TimestampMicros extends avsc.types.LogicalType {
  override _fromValue(value: number): string {
    // Microseconds past the millisecond are dropped: a JavaScript date holds milliseconds.
    return new Date(Math.floor(value / 1000)).toISOString();
  }
  override _toValue(value: string | number): number {
    return typeof value === "string" ? Date.parse(value) * 1000 : value;
  }
}

class DateOnly extends avsc.types.LogicalType {
  override _fromValue(value: number): string {
    return new Date(value * DAY_MS).toISOString().slice(0, 10);
  }
  override _toValue(value: string | number): number {
    return typeof value === "string" ? Math.round(Date.parse(value) / DAY_MS) : value;
  }
}

/** avsc's `logicalTypes` option. */
export const LOGICAL_TYPES = {
  decimal: DecimalType,
  "timestamp-millis": TimestampMillis,
  "timestamp-micros": TimestampMicros,
  date: DateOnly,
};
