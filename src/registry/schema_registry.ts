/**
 * @module
 * Records in the Confluent wire format (a zero byte, a four-byte schema id, the body), decoded with
 * their registered schema by Confluent's serde library (`@confluentinc/schemaregistry`: Avro,
 * Protobuf with message indexes, JSON Schema) against any registry with Confluent's API (Confluent,
 * Apicurio's `/apis/ccompat/v7`, Karapace). Schemas are cached by id. Each failure has a class:
 * {@link RegistryUnavailable} (unreachable, 5xx, or it refuses the credentials: try again later,
 * nothing is dead-lettered) or {@link UndecodableRecord} (an unknown schema id, bytes that do not
 * match their schema: permanent, naming the schema id).
 *
 * @example
 * ```ts
 * import { SchemaRegistry } from "./schema_registry.ts";
 * import { UndecodableRecord } from "./wire.ts";
 * const registry = new SchemaRegistry({ url: "http://127.0.0.1:1/apis/ccompat/v7" });
 * try {
 *   await registry.decode("orders", new TextEncoder().encode('{"id":1}'));
 *   throw new Error("decoded");
 * } catch (error) {
 *   if (!(error instanceof UndecodableRecord)) throw error; // JSON is not the wire format: no registry asked
 * }
 * ```
 */
import { Buffer } from "node:buffer";
import { createFileRegistry, type DescFile, type FileRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import * as wkt from "@bufbuild/protobuf/wkt";
import type { Client, SchemaInfo } from "@confluentinc/schemaregistry/dist/schemaregistry-client.js";
import { AvroDeserializer, AvroSerializer } from "@confluentinc/schemaregistry/dist/serde/avro.js";
import { JsonDeserializer, JsonSerializer } from "@confluentinc/schemaregistry/dist/serde/json.js";
import { ProtobufDeserializer } from "@confluentinc/schemaregistry/dist/serde/protobuf.js";
import { SerdeType } from "@confluentinc/schemaregistry/dist/serde/serde.js";
import { errorMessage } from "../errors.ts";
import {
  type RecordDecoder,
  type RegisteredFormat,
  RegistryUnavailable,
  type ReplyEncoder,
  type ReplyEncoding,
  schemaIdOf,
  UndecodableRecord,
  UnencodableReply,
} from "./wire.ts";
import { avroReply, REPLY_AVRO_SCHEMA, REPLY_JSON_SCHEMA, REPLY_RECORD_NAME } from "./reply_schema.ts";
import { avroOptions } from "./avro_logical.ts";
import { registryClient, type RegistryOptions, schemaNotFound, unavailable } from "./client.ts";
import { RestError } from "@confluentinc/schemaregistry/dist/rest-error.js";
import { serializedDescriptor } from "./protobuf_text.ts";
import { plainValue } from "./values.ts";

/** The well-known types' files (google/protobuf/*.proto), by name, for schemas that import them. */
const WELL_KNOWN = new Map(
  Object.values(wkt).flatMap((value) =>
    (value as { kind?: string }).kind === "file" ? [[(value as DescFile).proto.name, value as DescFile]] : []
  ),
);

const FORMATS: Record<string, RegisteredFormat> = { AVRO: "avro", PROTOBUF: "protobuf", JSON: "json-schema" };

/** A serializer of reply envelopes, bound to one subject and schema id. */
type ReplySerializer = { serialize(topic: string, message: unknown): Promise<Buffer> };

export class SchemaRegistry implements RecordDecoder, ReplyEncoder {
  readonly #client: Client;
  readonly #deserializers: Record<RegisteredFormat, { deserialize(topic: string, payload: Buffer): Promise<unknown> }>;
  readonly #url: string;
  /** Protobuf schemas' descriptors by schema id, to render their messages. */
  readonly #protobufFiles = new Map<number, FileRegistry>();
  /** Schemas by id, as the registry gave them (an id's schema never changes). */
  readonly #schemas = new Map<number, SchemaInfo>();
  /** Reply serializers by format, subject and registration: the schema registered or found once each. */
  readonly #replySerializers = new Map<string, Promise<ReplySerializer>>();

  constructor(options: RegistryOptions) {
    const { client, url } = registryClient(options);
    this.#url = url;
    this.#client = withProtobufText(client);
    const serde = (kind: RegisteredFormat) => {
      switch (kind) {
        case "avro":
          // deno-lint-ignore no-explicit-any
          return new AvroDeserializer(this.#client, SerdeType.VALUE, avroOptions() as any);
        case "protobuf":
          return new ProtobufDeserializer(this.#client, SerdeType.VALUE, {});
        case "json-schema":
          return new JsonDeserializer(this.#client, SerdeType.VALUE, { validate: true });
      }
    };
    this.#deserializers = { avro: serde("avro"), protobuf: serde("protobuf"), "json-schema": serde("json-schema") };
  }

  #protobufJson(schemaId: number, text: string, message: unknown): unknown {
    return protobufJson(this.#protobufFiles, schemaId, text, message);
  }

  /** The registry's base URL (no credentials in it). */
  get url(): string {
    return this.#url;
  }

  /**
   * Asks the registry for its subjects: resolves when it answers, rejects with a
   * {@link RegistryUnavailable} (`refused` when it refuses the credentials) when it does not.
   */
  async check(): Promise<void> {
    try {
      await this.#client.getAllSubjects();
    } catch (error) {
      throw unavailable(error) ?? new RegistryUnavailable(errorMessage(error));
    }
  }

  /**
   * Decodes a wire-format record of `topic` with its registered schema, as plain JSON data (see
   * values.ts). `expected`: the format the pipeline says its records are; another is undecodable.
   */
  async decode(
    topic: string,
    bytes: Uint8Array,
    expected?: RegisteredFormat,
  ): Promise<{ format: RegisteredFormat; schemaId: number; value: unknown }> {
    const schemaId = schemaIdOf(bytes);
    if (schemaId === undefined) {
      throw new UndecodableRecord("value is not in the Confluent wire format (no magic byte 0 and schema id)");
    }
    let info = this.#schemas.get(schemaId);
    try {
      // The client caches it too, but behind a key it builds for each ask: a third of the decode cost.
      if (!info) this.#schemas.set(schemaId, info = await this.#client.getBySubjectAndId(`${topic}-value`, schemaId));
    } catch (error) {
      const cause = unavailable(error);
      if (cause) throw cause;
      // A 404 that is no "schema not found" is a URL that serves no registry API (see unavailable()).
      if (schemaNotFound(error)) {
        throw new UndecodableRecord(`schema id ${schemaId} is not registered at ${this.#url}`, schemaId);
      }
      throw new UndecodableRecord(`schema id ${schemaId}: the registry answers ${errorMessage(error)}`, schemaId);
    }
    const format = FORMATS[info.schemaType ?? "AVRO"];
    if (!format) {
      throw new UndecodableRecord(
        `schema id ${schemaId} is of type ${info.schemaType}, not one the bridge reads`,
        schemaId,
      );
    }
    if (expected && format !== expected) {
      throw new UndecodableRecord(`schema id ${schemaId} is ${format}, the pipeline reads ${expected}`, schemaId);
    }
    try {
      const decoded = await this.#deserializers[format].deserialize(
        topic,
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      );
      const value = format === "protobuf" ? this.#protobufJson(schemaId, info.schema, decoded) : decoded;
      return { format, schemaId, value: plainValue(value) };
    } catch (error) {
      const cause = unavailable(error);
      if (cause) throw cause;
      throw new UndecodableRecord(
        `does not decode as ${format} with schema id ${schemaId}: ${errorMessage(error)}`,
        schemaId,
      );
    }
  }

  /**
   * Resolves once replies of `topic` can be written: the reply schema found (or registered) under its
   * subject. Rejects as {@link encode} does; at start, this tells a subject that will never take one.
   */
  async prepare(topic: string, encoding: ReplyEncoding): Promise<void> {
    await this.#serializerFor(topic, encoding);
  }

  #serializerFor(topic: string, encoding: ReplyEncoding): Promise<ReplySerializer> {
    const subject = replySubject(topic, encoding.subject);
    const key = `${encoding.format}\n${subject}\n${encoding.autoRegister}`;
    let serializer = this.#replySerializers.get(key);
    if (!serializer) {
      // Subjects named per key could grow it without end: the oldest goes (it is found again if asked).
      if (this.#replySerializers.size >= REPLY_SERIALIZERS_KEPT) {
        this.#replySerializers.delete(this.#replySerializers.keys().next().value!);
      }
      serializer = this.#replySerializer(subject, encoding);
      this.#replySerializers.set(key, serializer);
      // Asked again for the next reply: the registry may answer, or have the schema, by then.
      serializer.catch(() => this.#replySerializers.get(key) === serializer && this.#replySerializers.delete(key));
    }
    return serializer;
  }

  /**
   * A reply envelope of `topic` in the wire format, with the shipped reply schema (reply_schema.ts)
   * under its subject: registered there once when `autoRegister`, else found there.
   */
  async encode(topic: string, envelope: Record<string, unknown>, encoding: ReplyEncoding): Promise<Uint8Array> {
    const ready = await this.#serializerFor(topic, encoding);
    try {
      const message = encoding.format === "avro" ? avroReply(envelope) : envelope;
      const bytes = await ready.serialize(topic, message);
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      const cause = unavailable(error);
      if (cause) throw cause;
      throw new UnencodableReply(`the reply does not fit the ${encoding.format} reply schema: ${errorMessage(error)}`);
    }
  }

  async #replySerializer(subject: string, { format, autoRegister }: ReplyEncoding): Promise<ReplySerializer> {
    const info: SchemaInfo = format === "avro"
      ? { schemaType: "AVRO", schema: JSON.stringify(REPLY_AVRO_SCHEMA) }
      : { schemaType: "JSON", schema: JSON.stringify(REPLY_JSON_SCHEMA) };
    let id: number;
    try {
      // Looked up first, registered only where it is not there: a registry that lets the bridge read
      // but not write (or is read-only for a while) takes replies whose schema is registered already.
      id = await this.#client.getId(subject, info, false);
    } catch (error) {
      if (!autoRegister || !schemaMissing(error)) throw replySchemaError(error, subject, format, "look up");
      try {
        id = await this.#client.register(subject, info, false);
      } catch (error) {
        throw replySchemaError(error, subject, format, "register");
      }
    }
    // The schema id is settled above: the serializer neither derives a schema nor registers one.
    const conf = { useSchemaId: id, autoRegisterSchemas: false, subjectNameStrategy: () => subject };
    return format === "avro"
      ? new AvroSerializer(this.#client, SerdeType.VALUE, conf)
      : new JsonSerializer(this.#client, SerdeType.VALUE, { ...conf, validate: true });
  }
}

/** Reply serializers kept, at most (one a subject). */
const REPLY_SERIALIZERS_KEPT = 1_000;

/** The registry's "no such subject" (40401) or "the subject has no such schema" (40403). */
function schemaMissing(error: unknown): boolean {
  return error instanceof RestError && error.status === 404 && (error.errorCode === 40401 || error.errorCode === 40403);
}

/** Why the reply schema could not be registered (or found) under its subject, classed. */
function replySchemaError(
  error: unknown,
  subject: string,
  format: ReplyEncoding["format"],
  step: "look up" | "register",
): Error {
  const file = format === "avro" ? "config/schemas/reply.avsc" : "config/schemas/reply.schema.json";
  const status = error instanceof RestError ? error.status : undefined;
  if (step === "look up" && schemaMissing(error)) {
    return new UnencodableReply(
      `subject ${subject} has no version of the reply schema: register ${file} under it, or set publish.auto_register: true`,
    );
  }
  if (status === 409) {
    return new UnencodableReply(
      `the registry refuses the reply schema under subject ${subject}: it is not compatible with the versions there (HTTP 409)`,
    );
  }
  if (step === "register" && (status === 401 || status === 403)) {
    return new RegistryUnavailable(
      `the registry refuses to register the reply schema under subject ${subject} (HTTP ${status}): give the bridge's credentials that right, or register ${file} and set publish.auto_register: false`,
      "refused",
    );
  }
  const cause = unavailable(error);
  if (cause) return cause;
  return new UnencodableReply(`the reply schema under subject ${subject}: ${errorMessage(error)}`);
}

/**
 * The subject a reply of `topic` is registered under (Confluent's TopicNameStrategy,
 * RecordNameStrategy and TopicRecordNameStrategy).
 */
export function replySubject(topic: string, strategy: ReplyEncoding["subject"]): string {
  switch (strategy) {
    case "topic":
      return `${topic}-value`;
    case "record":
      return REPLY_RECORD_NAME;
    case "topic-record":
      return `${topic}-${REPLY_RECORD_NAME}`;
  }
}

/**
 * A decoded Protobuf message in Protobuf's JSON mapping, with the field names of the `.proto`
 * (`order_id`, as templates name them), 64-bit integers as strings, bytes as base64, enums by name.
 */
function protobufJson(files: Map<number, FileRegistry>, schemaId: number, text: string, message: unknown): unknown {
  let registry = files.get(schemaId);
  if (!registry) {
    const file = fromBinary(
      wkt.FileDescriptorProtoSchema,
      Buffer.from(serializedDescriptor(text, `schema-${schemaId}.proto`), "base64"),
    );
    files.set(schemaId, registry = createFileRegistry(file, (name) => WELL_KNOWN.get(name)));
  }
  const typeName = (message as { $typeName?: string }).$typeName;
  const desc = typeName ? registry.getMessage(typeName) : undefined;
  // deno-lint-ignore no-explicit-any
  return desc ? toJson(desc, message as any, { useProtoFieldName: true }) : message;
}

/**
 * The client, with Protobuf schemas asked for as serialized descriptors built from their `.proto`
 * text (see protobuf_text.ts), memoized per schema.
 */
function withProtobufText(client: Client): Client {
  const built = new Map<string, SchemaInfo>();
  const serialized = (info: SchemaInfo, id: number): SchemaInfo => {
    if (info.schemaType !== "PROTOBUF") return info;
    const key = `${id}\n${info.schema}`;
    let result = built.get(key);
    if (!result) built.set(key, result = { ...info, schema: serializedDescriptor(info.schema, `schema-${id}.proto`) });
    return result;
  };
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === "getBySubjectAndId") {
        return async (subject: string, id: number, format?: string) => {
          const info = await target.getBySubjectAndId(subject, id);
          return format === "serialized" ? serialized(info, id) : info;
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
