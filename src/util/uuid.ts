/**
 * Name-based UUIDs: ids derived from their inputs, so the same input always gives the same id.
 *
 * @example
 * ```ts
 * import { nameBasedUuid } from "./uuid.ts";
 * nameBasedUuid("orders\nK-1") === nameBasedUuid("orders\nK-1"); // true
 * ```
 */
import { createHash } from "node:crypto";

/** A UUID (version 8, SHA-256 of `name`): the same name always gives the same id. */
export function nameBasedUuid(name: string): string {
  const hex = createHash("sha256").update(name).digest("hex");
  const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${
    hex.slice(20, 32)
  }`;
}
