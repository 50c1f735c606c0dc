/**
 * @module
 * Parses a duration such as `60s`, `1.5s`, `500ms`, `2m` or `1h`; a bare number means seconds,
 * as the old bridge's `RETRY_DELAY=1.0` did.
 *
 * @returns the duration in milliseconds, or `undefined` when the text is not a duration.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration.ts";
 * if (parseDuration("1.5s") !== 1500 || parseDuration("250ms") !== 250) throw new Error("units");
 * if (parseDuration(2) !== 2000) throw new Error("a bare number is seconds");
 * ```
 */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === "number") {
    return Number.isFinite(input) && input >= 0 ? Math.round(input * 1000) : undefined;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(input);
  if (!match) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
  return Math.round(Number(match[1]) * unit);
}
