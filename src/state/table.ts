/**
 * @module
 * A table of small JSON values that outlives a bridge and is shared by its replicas: the bridge
 * keeps it in a compacted Kafka topic (`src/kafka/compacted_table.ts`); {@link MemoryTable} serves
 * tests and a bridge without one. Reads are local and immediate; a write resolves once it is
 * durable; a delete is best effort (an entry left behind is found stale by whoever reads it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryTable } from "./table.ts";
 * const table = new MemoryTable();
 * await table.set("a", { n: 1 });
 * assert.deepEqual(table.get("a"), { n: 1 });
 * table.delete("a");
 * assert.equal(table.get("a"), undefined);
 * ```
 */

/** Small JSON values by key. */
export interface Table {
  get(key: string): unknown;
  /** Resolves once the value is durable. */
  set(key: string, value: unknown): Promise<void>;
  /** Best effort: a failure to delete is logged, not thrown. */
  delete(key: string): void;
  /** The entries whose keys start with `prefix`. */
  entries(prefix: string): [string, unknown][];
  /** Resolves once what other replicas had written when it was called can be read here. */
  sync(): Promise<void>;
}

/** A table in memory: for tests, and for what need not outlive the process. */
export class MemoryTable implements Table {
  readonly #entries = new Map<string, unknown>();

  get(key: string): unknown {
    return this.#entries.get(key);
  }

  set(key: string, value: unknown): Promise<void> {
    this.#entries.set(key, structuredClone(value));
    return Promise.resolve();
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  entries(prefix: string): [string, unknown][] {
    return [...this.#entries].filter(([key]) => key.startsWith(prefix));
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }
}
