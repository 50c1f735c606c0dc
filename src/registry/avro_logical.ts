/**
 * @module
 * Avro's logical types as the bridge reads them (avsc ships none): `decimal` as a string of its
 * digits, `timestamp-millis` and `timestamp-micros` as ISO 8601 strings, `date` as `YYYY-MM-DD`;
 * and `long` read whole: a number where that is exact, a bigint beyond 2^53 (avsc's own refuses
 * those), which `values.ts` writes as a string. Given to the Avro deserializer as avsc options
 * ({@link avroOptions}).
 *
 * @example
 * ```ts
 * import avsc from "avsc";
 * import { Buffer } from "node:buffer";
 * import { avroOptions } from "./avro_logical.ts";
 * const fields = [
 *   { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 10, scale: 2 } },
 *   { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
 *   { name: "id", type: "long" },
 * ];
 * // deno-lint-ignore no-explicit-any
 * const type = avsc.Type.forSchema({ type: "record", name: "Payment", fields } as any, avroOptions());
 * const plain = fields.map(({ name, type }) => ({ name, type: typeof type === "string" ? type : type.type }));
 * // deno-lint-ignore no-explicit-any
 * const writer = avsc.Type.forSchema({ type: "record", name: "Payment", fields: plain } as any, avroOptions());
 * const written = writer.toBuffer({ amount: Buffer.from([0x01, 0xe2, 0x40]), at: 0, id: 2n ** 62n });
 * const read = type.fromBuffer(written);
 * if (read.amount !== "1234.56" || read.at !== "1970-01-01T00:00:00.000Z" || read.id !== 2n ** 62n) throw new Error("read");
 * ```
 */
import avsc from "avsc";
import { Buffer } from "node:buffer";
import { decimalText } from "./values.ts";

const DAY_MS = 86_400_000;
const SAFE = [BigInt(Number.MIN_SAFE_INTEGER), BigInt(Number.MAX_SAFE_INTEGER)] as const;

/** A `long` as a number where exact, else a bigint. */
const WholeLong = avsc.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => {
    const value = buffer.readBigInt64LE();
    return value >= SAFE[0] && value <= SAFE[1] ? Number(value) : value;
  },
  toBuffer: (value: number | bigint) => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64LE(BigInt(value));
    return buffer;
  },
  fromJSON: (value: number | string) => typeof value === "string" ? BigInt(value) : value,
  toJSON: (value: number | bigint) => typeof value === "bigint" ? value.toString() : value,
  isValid: (value: unknown) => typeof value === "bigint" || Number.isInteger(value),
  compare: (a: number | bigint, b: number | bigint) => a === b ? 0 : a < b ? -1 : 1,
});

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
  override _fromValue(value: number | bigint): string {
    return new Date(Number(value)).toISOString();
  }
  override _toValue(value: string | number): number {
    return typeof value === "string" ? Date.parse(value) : value;
  }
}

class TimestampMicros extends avsc.types.LogicalType {
  override _fromValue(value: number | bigint): string {
    // Microseconds past the millisecond are dropped: a JavaScript date holds milliseconds.
    return new Date(Math.floor(Number(value) / 1000)).toISOString();
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

/**
 * The avsc options the bridge reads Avro with: its logical types, and every `long` whole. A new
 * object each time: avsc keeps the named types it parses in its options (`registry`).
 */
export const avroOptions = () => ({
  logicalTypes: LOGICAL_TYPES,
  // deno-lint-ignore no-explicit-any
  typeHook: (schema: any) =>
    schema === "long" || (schema?.type === "long" && !schema.logicalType) ? WholeLong : undefined,
});
