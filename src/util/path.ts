/**
 * @module
 * Reads a dotted path such as `order.customer.id` (or `items.0.sku`) from a decoded value.
 *
 * @returns the value there, or `undefined` when any step is missing.
 *
 * @example
 * ```ts
 * import { getPath } from "./path.ts";
 * getPath({ order: { id: "ORD-1" } }, "order.id"); // "ORD-1"
 * getPath({ order: null }, "order.id"); // undefined
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
