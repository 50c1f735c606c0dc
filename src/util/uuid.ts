/**
 * @module
 * Name-based UUIDs: ids derived from their inputs, so the same input always gives the same id.
 *
 * @example
 * ```ts
 * import { nameBasedUuid } from "./uuid.ts";
 * if (nameBasedUuid("orders\nK-1") !== nameBasedUuid("orders\nK-1")) throw new Error("same name, same id");
 * // A name given in parts, text or bytes, is the same name as their concatenation.
 * if (nameBasedUuid("orders\n", new TextEncoder().encode("K-1")) !== nameBasedUuid("orders\nK-1")) throw new Error();
 * ```
 */
import { createHash } from "node:crypto";

/**
 * A UUID (version 8, SHA-256 of the name): the same name always gives the same id. The name may come
 * in parts, text (as UTF-8) or raw bytes, hashed one after another.
 */
export function nameBasedUuid(...name: (string | Uint8Array)[]): string {
  const hash = createHash("sha256");
  for (const part of name) hash.update(part);
  const hex = hash.digest("hex");
  const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${
    hex.slice(20, 32)
  }`;
}
