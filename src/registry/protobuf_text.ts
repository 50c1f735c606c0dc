/**
 * @module
 * A registered Protobuf schema's `.proto` text as the serialized FileDescriptorProto that the
 * Protobuf deserializer asks the registry for (`?format=serialized`). Confluent's registry answers
 * that itself; Apicurio's compatible API answers with bytes the deserializer cannot read. So the
 * bridge always reads the text and builds the descriptor here (protobufjs parses it,
 * @bufbuild/protobuf writes it), whichever registry it talks to. Types are qualified by
 * Protobuf's scoping rules (nested first, then outward to the package); imports of well-known types
 * (`google/protobuf/timestamp.proto`…) are dependencies every reader knows. Schemas that import
 * other files of their own (references) are not built here.
 *
 * @example
 * ```ts
 * import { Buffer } from "node:buffer";
 * import { fromBinary } from "@bufbuild/protobuf";
 * import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
 * import { serializedDescriptor } from "./protobuf_text.ts";
 * const text = 'syntax = "proto3"; package shop; message Order { message Line { string sku = 1; } repeated Line lines = 1; }';
 * const file = fromBinary(FileDescriptorProtoSchema, Buffer.from(serializedDescriptor(text, "order.proto"), "base64"));
 * if (file.messageType[0].field[0].typeName !== ".shop.Order.Line") throw new Error(file.messageType[0].field[0].typeName);
 * ```
 */
import { Buffer } from "node:buffer";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import protobuf from "protobufjs";
import "protobufjs/ext/descriptor/index.js";

/** The base64 FileDescriptorProto of a `.proto` text, named `fileName`. */
export function serializedDescriptor(text: string, fileName: string): string {
  const parsed = protobuf.parse(text, { keepCase: true });
  const root = parsed.root;
  // Well-known types (google/protobuf/*.proto) are known to every reader: added to resolve against, not written.
  const wellKnown = (parsed.imports ?? []).filter((name) => name.startsWith("google/protobuf/"));
  for (const name of wellKnown) {
    // deno-lint-ignore no-explicit-any
    const common = (protobuf as any).common.get(name);
    if (common) root.addJSON(common.nested);
  }
  // Resolved, so that map fields of messages and imported types have descriptors.
  root.resolveAll();
  const syntax = /^\s*syntax\s*=\s*"(proto[23])"/m.exec(text)?.[1] ?? "proto2";
  // deno-lint-ignore no-explicit-any
  const set = (root as any).toDescriptor(syntax);
  const files = fromBinary(FileDescriptorSetSchema, set.constructor.encode(set).finish() as Uint8Array).file;
  const file = files.find((f) => f.package === (parsed.package ?? "") && !f.name.startsWith("google_protobuf")) ??
    files[0];
  file.name = fileName;
  file.dependency = wellKnown;
  // Every type's full name, to resolve the relative names protobufjs writes.
  const known = new Set<string>();
  const collect = (scope: string, messages: DescriptorProto[], enums: EnumDescriptorProto[]) => {
    for (const enumType of enums) known.add(`${scope}.${enumType.name}`);
    for (const message of messages) {
      known.add(`${scope}.${message.name}`);
      collect(`${scope}.${message.name}`, message.nestedType, message.enumType);
    }
  };
  for (const each of files) collect(each.package ? `.${each.package}` : "", each.messageType, each.enumType);
  const qualify = (scope: string, messages: DescriptorProto[]) => {
    for (const message of messages) {
      const inner = `${scope}.${message.name}`;
      for (const field of message.field) {
        if (field.typeName && !field.typeName.startsWith(".")) field.typeName = resolve(inner, field.typeName, known);
        // protoc always writes json_name, and @bufbuild/protobuf relies on it; protobufjs leaves it out.
        field.jsonName ||= field.name.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
      }
      qualify(inner, message.nestedType);
    }
  };
  qualify(file.package ? `.${file.package}` : "", file.messageType);
  return Buffer.from(toBinary(FileDescriptorProtoSchema, file)).toString("base64");
}

/** A relative type name as Protobuf resolves it: in the innermost scope that has it, then outward. */
function resolve(scope: string, name: string, known: ReadonlySet<string>): string {
  for (let at = scope;; at = at.slice(0, at.lastIndexOf("."))) {
    if (known.has(`${at}.${name}`)) return `${at}.${name}`;
    if (!at) return `.${name}`;
  }
}
