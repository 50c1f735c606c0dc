/**
 * @module
 * Parses a size such as `64MiB`, `512KiB`, `1GiB` or `1048576`; a bare number means bytes. The
 * decimal units (`KB`, `MB`, `GB`) are powers of 1000, the binary ones (`KiB`, `MiB`, `GiB`) of 1024.
 *
 * @returns the size in bytes, or `undefined` when the text is not a size.
 *
 * @example
 * ```ts
 * import { parseByteSize } from "./byte_size.ts";
 * if (parseByteSize("64MiB") !== 67108864 || parseByteSize("1.5 KB") !== 1500) throw new Error("units");
 * if (parseByteSize("nope") !== undefined) throw new Error("not a size");
 * ```
 */
export function parseByteSize(input: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$/i.exec(input);
  if (!match) return undefined;
  const unit = match[2]?.toLowerCase() ?? "b";
  const scale = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 }[unit]!;
  return Math.round(Number(match[1]) * scale);
}
