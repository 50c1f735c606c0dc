/**
 * JSON text of any value, at any depth. `JSON.stringify(value, null, 2)` (V8 15, Deno 2.9) recurses and dies with
 * "Maximum call stack size exceeded" near 5,400 levels of nesting (compact output too, once a `toJSON`
 * or getter is involved), although `JSON.parse` builds such values without trouble. {@link jsonText}
 * asks `JSON.stringify` first and, only when that overflows the stack, renders the same text with an
 * explicit stack instead of recursion.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonText } from "./json_text.ts";
 * assert.equal(jsonText({ a: [1, "x"], b: undefined }, 2), '{\n  "a": [\n    1,\n    "x"\n  ]\n}');
 * const deep = JSON.parse("[".repeat(6_000) + "]".repeat(6_000));
 * assert.throws(() => JSON.stringify(deep, null, 2), RangeError);
 * const lines = jsonText(deep, 2).split("\n");
 * assert.equal(lines.length, 2 * 6_000 - 1);
 * assert.equal(lines[5_999], " ".repeat(2 * 5_999) + "[]");
 * assert.equal(jsonText(undefined), "null");
 * ```
 *
 * @module
 */
import { isBigIntObject, isBooleanObject, isBoxedPrimitive, isNumberObject, isStringObject } from "node:util/types";

/**
 * JSON text of `value` like `JSON.stringify(value, null, indent)`, without recursion: any depth.
 *
 * The text is identical to `JSON.stringify`'s: `toJSON` methods are called (with the same key, in
 * the same order), boxed primitives are unwrapped, `undefined`, functions and symbols are left out of
 * objects and become `null` in arrays, and `indent` is clamped to 0–10 spaces. `JSON.stringify` runs
 * first, so ordinary values cost nothing extra; only when it overflows the stack does the iterative
 * renderer run, calling any `toJSON` methods and getters a second time.
 *
 * One difference: where `JSON.stringify` returns `undefined` (the whole value is `undefined`, a
 * function or a symbol), this returns `"null"`, so the result is always JSON text.
 *
 * @throws {TypeError} for a BigInt or a circular structure, as `JSON.stringify` does.
 * @throws {RangeError} when the text is longer than the engine's longest string. Indented text grows
 * with the square of the depth (line n starts with n × indent spaces), so with `indent = 2` this is
 * reached near 16,000 levels; compact text grows only with the depth.
 */
export function jsonText(value: unknown, indent = 0): string {
  try {
    // Without an indent, the one-argument call: V8 takes it measurably faster than (value, null, 0).
    return (indent ? JSON.stringify(value, null, indent) : JSON.stringify(value)) ?? "null";
  } catch (error) {
    // Only a stack overflow is worth a second try; "Invalid string length" would only come back.
    if (!(error instanceof RangeError) || /string length/i.test(error.message)) throw error;
  }
  return jsonTextIterative(value, indent);
}

/** An array or object being rendered: its members go out one at a time. */
interface Frame {
  readonly holder: object;
  /** Own enumerable keys of an object; `undefined` for an array. */
  readonly keys: string[] | undefined;
  /** Number of members (array length or key count). */
  readonly length: number;
  /** Next member to render. */
  next: number;
  /** Whether a member has been written (objects skip some members, so `next > 0` does not say). */
  written: boolean;
}

const OMITTED = Symbol("omitted");

/**
 * The renderer {@link jsonText} falls back to: the same text, with an explicit stack instead of
 * recursion and the pieces joined once at the end. Exported to test and measure it on its own.
 */
export function jsonTextIterative(value: unknown, indent = 0): string {
  const gap = " ".repeat(Math.max(0, Math.min(10, Math.trunc(indent) || 0)));
  const colon = gap ? ": " : ":";
  // A line break and `depth` levels of indent, as a slice of one flat string (slices copy fast when
  // joined; cached concatenations would be cons strings, several times slower to join when deep).
  let lines = "\n" + gap.repeat(64);
  const lineAt = (depth: number): string => {
    if (!gap) return "";
    const length = 1 + depth * gap.length;
    if (length > lines.length) lines = "\n" + gap.repeat(Math.max(depth, 2 * (lines.length - 1) / gap.length));
    return lines.slice(0, length);
  };

  const out: string[] = [];
  const stack: Frame[] = [];
  const open = new Set<object>();

  /** Writes a primitive, or writes `[`/`{` and opens a frame for an array or object. */
  const write = (item: unknown): void => {
    if (typeof item !== "object" || item === null) {
      out.push(primitiveText(item));
      return;
    }
    if (open.has(item)) throw new TypeError("Converting circular structure to JSON");
    open.add(item);
    if (Array.isArray(item)) {
      stack.push({ holder: item, keys: undefined, length: item.length, next: 0, written: false });
      out.push("[");
    } else {
      const keys = Object.keys(item);
      stack.push({ holder: item, keys, length: keys.length, next: 0, written: false });
      out.push("{");
    }
  };

  const top = prepare({ "": value }, "");
  write(top === OMITTED ? null : top);

  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    let opened = false;
    while (frame.next < frame.length && !opened) {
      const index = frame.next++;
      if (frame.keys === undefined) {
        const item = prepare(frame.holder, String(index));
        out.push(index === 0 ? lineAt(stack.length) : "," + lineAt(stack.length));
        frame.written = true;
        write(item === OMITTED ? null : item);
      } else {
        const key = frame.keys[index];
        const item = prepare(frame.holder, key);
        if (item === OMITTED) continue;
        out.push((frame.written ? "," : "") + lineAt(stack.length) + JSON.stringify(key) + colon);
        frame.written = true;
        write(item);
      }
      opened = stack[stack.length - 1] !== frame;
    }
    if (opened) continue;
    stack.pop();
    open.delete(frame.holder);
    const close = frame.keys === undefined ? "]" : "}";
    out.push(frame.written ? lineAt(stack.length) + close : close);
  }
  return out.join("");
}

/**
 * `holder[key]` as JSON.stringify's SerializeJSONProperty sees it: after `toJSON` and with boxed
 * primitives unwrapped; {@link OMITTED} for `undefined`, functions and symbols.
 */
function prepare(holder: object, key: string): unknown {
  let item: unknown = (holder as Record<string, unknown>)[key];
  if ((typeof item === "object" && item !== null) || typeof item === "bigint") {
    const toJSON = (item as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") item = toJSON.call(item, key);
  }
  if (typeof item === "object" && item !== null && isBoxedPrimitive(item)) {
    if (isNumberObject(item)) item = Number(item);
    else if (isStringObject(item)) item = String(item);
    else if (isBooleanObject(item)) item = Boolean.prototype.valueOf.call(item);
    else if (isBigIntObject(item)) item = BigInt.prototype.valueOf.call(item);
  }
  return item === undefined || typeof item === "function" || typeof item === "symbol" ? OMITTED : item;
}

/** Text of a primitive left by {@link prepare}. */
function primitiveText(item: unknown): string {
  switch (typeof item) {
    case "string":
      return JSON.stringify(item);
    case "number":
      return Number.isFinite(item) ? String(item) : "null";
    case "boolean":
      return item ? "true" : "false";
    case "bigint":
      throw new TypeError("Do not know how to serialize a BigInt");
    default:
      return "null";
  }
}
