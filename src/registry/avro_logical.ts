/**
 * @module
 * Avro's logical types as the bridge reads them (avsc ships none): `decimal` as a string of its
 * digits, `timestamp-millis` and `timestamp-micros` as ISO 8601 strings, `date` as `YYYY-MM-DD`;
 * and `long` read whole: a number where that is exact, a bigint beyond 2^53 (avsc's own refuses
 * those), which `values.ts` writes as a string. Given to the Avro deserializer as avsc options
 * ({@link avroOptions}).
 *
 * Written the other way (`deno task send --format avro`, a pipeline example's record), each takes
 * what it reads back: a decimal's digit string (or a number), within the schema's scale and
 * precision, never rounded; a timestamp's ISO 8601 text with its zone (`Z` or `+01:00`: text
 * without one would be read in the local zone of whoever runs it) or a number since the epoch; a
 * date's `YYYY-MM-DD`; a long's digit string. Anything else does not fit the type.
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
const INT64 = [-(2n ** 63n), 2n ** 63n - 1n] as const;
/** ISO 8601 date and time with its zone. */
const ZONED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;

/** A `long` as a number where exact, else a bigint. */
const WholeLong = avsc.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => {
    const value = buffer.readBigInt64LE();
    return value >= SAFE[0] && value <= SAFE[1] ? Number(value) : value;
  },
  toBuffer: (value: number | bigint | string) => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64LE(BigInt(value));
    return buffer;
  },
  fromJSON: (value: number | string) => typeof value === "string" ? BigInt(value) : value,
  toJSON: (value: number | bigint) => typeof value === "bigint" ? value.toString() : value,
  // Digit strings too: how a long beyond 2^53 reads, and how JSON can give one exactly.
  isValid: (value: unknown) => {
    const whole = typeof value === "string" && /^-?\d+$/.test(value) ? BigInt(value) : value;
    return (typeof whole === "bigint" && whole >= INT64[0] && whole <= INT64[1]) || Number.isSafeInteger(whole);
  },
  compare: (a: number | bigint, b: number | bigint) => a === b ? 0 : a < b ? -1 : 1,
});

class DecimalType extends avsc.types.LogicalType {
  readonly #scale: number;
  readonly #precision: number | undefined;
  // deno-lint-ignore no-explicit-any
  constructor(attrs: any, options: any) {
    super(attrs, options);
    this.#scale = attrs.scale ?? 0;
    this.#precision = attrs.precision;
  }
  override _fromValue(value: Uint8Array): string {
    return decimalText(value, this.#scale);
  }
  /** The attributes `schema({ exportAttrs: true })` shows. */
  // deno-lint-ignore no-explicit-any
  override _export(attrs: any): void {
    attrs.scale = this.#scale;
    if (this.#precision !== undefined) attrs.precision = this.#precision;
  }
  /** Undefined (not this type) for anything but digits within the scale and precision. */
  override _toValue(value: unknown): Uint8Array | undefined {
    if (value instanceof Uint8Array) return value;
    const text = typeof value === "number" && Number.isFinite(value) ? String(value) : value;
    const parts = typeof text === "string" ? /^(-?)(\d+)(?:\.(\d+))?$/.exec(text) : null;
    if (!parts) return undefined;
    const [, sign, whole, fraction = ""] = parts;
    if (fraction.length > this.#scale) return undefined;
    const digits = (whole + fraction.padEnd(this.#scale, "0")).replace(/^0+(?=\d)/, "");
    if (this.#precision !== undefined && digits.length > this.#precision) return undefined;
    // Digits back to big-endian two's complement, at the schema's scale.
    let unscaled = BigInt(digits);
    if (sign) unscaled = -unscaled;
    const bytes: number[] = [];
    for (let rest = unscaled;; rest >>= 8n) {
      bytes.unshift(Number(rest & 0xffn));
      if ((rest === 0n || rest === -1n) && (bytes[0] & 0x80) === (unscaled < 0n ? 0x80 : 0)) break;
    }
    return Buffer.from(bytes);
  }
}

/** Milliseconds since the epoch of ISO 8601 text with its zone; undefined for other text. */
function instant(text: string): number | undefined {
  const ms = ZONED.test(text) ? Date.parse(text) : NaN;
  return Number.isNaN(ms) ? undefined : ms;
}

class TimestampMillis extends avsc.types.LogicalType {
  override _fromValue(value: number | bigint): string {
    return new Date(Number(value)).toISOString();
  }
  override _toValue(value: unknown): unknown {
    return typeof value === "string" ? instant(value) : value;
  }
}

class TimestampMicros extends avsc.types.LogicalType {
  override _fromValue(value: number | bigint): string {
    // Microseconds past the millisecond are dropped: a JavaScript date holds milliseconds.
    return new Date(Math.floor(Number(value) / 1000)).toISOString();
  }
  override _toValue(value: unknown): unknown {
    if (typeof value !== "string") return value;
    const ms = instant(value);
    return ms === undefined ? undefined : ms * 1000;
  }
}

class DateOnly extends avsc.types.LogicalType {
  override _fromValue(value: number): string {
    return new Date(value * DAY_MS).toISOString().slice(0, 10);
  }
  override _toValue(value: unknown): unknown {
    if (typeof value !== "string") return value;
    const ms = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(value) : NaN;
    return Number.isNaN(ms) ? undefined : Math.round(ms / DAY_MS);
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
