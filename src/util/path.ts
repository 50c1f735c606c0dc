/**
 * @module
 * Reads a dotted path such as `order.customer.id` (or `items.0.sku`) from a decoded value.
 *
 * @returns the value there, or `undefined` when any step is missing.
 *
 * @example
 * ```ts
 * import { getPath } from "./path.ts";
 * if (getPath({ order: { id: "ORD-1" } }, "order.id") !== "ORD-1") throw new Error("a nested field");
 * if (getPath({ order: null }, "order.id") !== undefined) throw new Error("through null: no value");
 * ```
 */
export function getPath(value: unknown, path: string): unknown {
  let node = value;
  for (const step of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[step];
  }
  return node;
}
