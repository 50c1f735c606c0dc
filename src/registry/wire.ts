/**
 * @module
 * The Confluent wire format (a zero byte, a four-byte big-endian schema id, the body) and the two
 * classes of failure to decode a record with its schema, without the serde library itself (which
 * is loaded only where a registry is configured: see schema_registry.ts).
 *
 * @example
 * ```ts
 * import { schemaIdOf } from "./wire.ts";
 * if (schemaIdOf(new Uint8Array([0, 0, 0, 1, 2, 7])) !== 258) throw new Error("the id after the magic byte");
 * if (schemaIdOf(new TextEncoder().encode('{"a":1}')) !== undefined) throw new Error("JSON is not the wire format");
 * ```
 */

/** The registered formats, as pipelines name them (`source.format`). */
export const REGISTERED_FORMATS = ["avro", "protobuf", "json-schema"] as const;
export type RegisteredFormat = typeof REGISTERED_FORMATS[number];

/** Whether a pipeline's `source.format` is one whose records are decoded with a registered schema. */
export const isRegistered = (format: string): format is RegisteredFormat =>
  (REGISTERED_FORMATS as readonly string[]).includes(format);

/** Decodes wire-format records with their registered schemas (see `SchemaRegistry`). */
export interface RecordDecoder {
  /** The registry's base URL, for messages. */
  readonly url: string;
  /** A record of `topic` as plain JSON data; rejects with {@link RegistryUnavailable} or {@link UndecodableRecord}. */
  decode(
    topic: string,
    bytes: Uint8Array,
    expected?: RegisteredFormat,
  ): Promise<{ format: RegisteredFormat; schemaId: number; value: unknown }>;
  /** Resolves when the registry answers and accepts the credentials. */
  check(): Promise<void>;
}

/** The formats a reply envelope can be written in with a registered schema (`publish.format`). */
export type ReplyFormat = "avro" | "json-schema";

/** Whether a pipeline's `publish.format` writes replies with a registered schema. */
export const isReplyFormat = (format: string): format is ReplyFormat => format === "avro" || format === "json-schema";

/**
 * Where a reply's schema is registered (Confluent's subject name strategies): `topic`:
 * `<responses topic>-value`; `record`: the schema's full name; `topic-record`: `<topic>-<full name>`.
 */
export type SubjectStrategy = "topic" | "record" | "topic-record";

/** How one pipeline writes its replies with a registered schema. */
export interface ReplyEncoding {
  format: ReplyFormat;
  subject: SubjectStrategy;
  /** Register the shipped schema under its subject when it is not there; false: it must be there. */
  autoRegister: boolean;
}

/** Writes reply envelopes in the wire format with the shipped reply schema (see reply_schema.ts). */
export interface ReplyEncoder {
  /** The registry's base URL, for messages. */
  readonly url: string;
  /**
   * The envelope for `topic` as wire-format bytes; rejects with {@link RegistryUnavailable} (try
   * again later) or {@link UnencodableReply} (never: a subject without the schema, an incompatible one).
   */
  encode(topic: string, envelope: Record<string, unknown>, encoding: ReplyEncoding): Promise<Uint8Array>;
  /** Resolves once replies of `topic` can be encoded (the schema under its subject); rejects as `encode` does. */
  prepare(topic: string, encoding: ReplyEncoding): Promise<void>;
}

/** A reply cannot be written with its registered schema, however often it is tried. */
export class UnencodableReply extends Error {
  override name = "UnencodableReply";
}

/** The registry cannot answer now (unreachable, 5xx, or it refuses the credentials): try again later. */
export class RegistryUnavailable extends Error {
  override name = "RegistryUnavailable";
  /**
   * `refused`: it refuses the credentials; `misconfigured`: the URL serves no Confluent-compatible
   * API (a 404 that is no "schema not found"); `untrusted`: its TLS certificate is signed by no CA
   * the bridge trusts. Each stops the start; later, records wait.
   */
  constructor(message: string, readonly why?: "refused" | "misconfigured" | "untrusted") {
    super(message);
  }

  /** Whether it refuses the credentials. */
  get refused(): boolean {
    return this.why === "refused";
  }
}

/** The record cannot be decoded, however often it is tried: an unknown schema id, or bytes that do not match it. */
export class UndecodableRecord extends Error {
  override name = "UndecodableRecord";
  constructor(message: string, readonly schemaId?: number) {
    super(message);
  }
}

/** The schema id of a record in the Confluent wire format; undefined for anything else. */
export function schemaIdOf(bytes: Uint8Array): number | undefined {
  if (bytes.length < 5 || bytes[0] !== 0) return undefined;
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
}
