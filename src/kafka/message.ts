/**
 * @module
 * An {@link OutRecord} (a reply, a DLQ record, a replayed record) as the message kafkajs sends.
 *
 * @example
 * ```ts
 * import { toKafkaMessage } from "./message.ts";
 * const message = toKafkaMessage({ key: null, value: new TextEncoder().encode("{}"), headers: { "x-pipeline": "p" } });
 * if (String(message.value) !== "{}" || message.headers?.["x-pipeline"] !== "p") throw new Error("as it was");
 * ```
 */
import { Buffer } from "node:buffer";
import type { Message } from "kafkajs";
import type { OutRecord } from "../model.ts";

/** The bytes as a Buffer over the same memory (kafkajs wants Buffers; nothing is copied). */
const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export function toKafkaMessage(record: OutRecord): Message {
  return {
    key: record.key === null ? null : asBuffer(record.key),
    value: asBuffer(record.value),
    headers: Object.fromEntries(
      Object.entries(record.headers).map(([name, value]) => [
        name,
        typeof value === "string" ? value : Array.isArray(value) ? value.map(asBuffer) : asBuffer(value),
      ]),
    ),
  };
}
