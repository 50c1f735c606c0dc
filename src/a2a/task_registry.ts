/**
 * @module
 * Long-running A2A tasks that outlive a bridge: when an agent answers a message with a task that
 * is not finished, its id is written to the bridge's {@link Table} (a compacted Kafka topic) before
 * the bridge starts polling it, and deleted once the task is over and its message committed. A
 * bridge that gets the message again (after a restart or a rebalance, since nothing unfinished is
 * committed) finds the task there and polls it instead of sending the message a second time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryTable } from "../state/table.ts";
 * import { TaskRegistry } from "./task_registry.ts";
 * const tasks = new TaskRegistry(new MemoryTable());
 * await tasks.remember("message-1", { taskId: "t-1", url: "http://agent/a2a" });
 * assert.equal(tasks.get("message-1")?.taskId, "t-1");
 * ```
 */
import type { Table } from "../state/table.ts";

/** A task an agent is working on for a message. */
export interface RunningTask {
  taskId: string;
  /** The endpoint that owns the task. */
  url: string;
}

/** The tasks agents work on, by the id of the message that started them. */
export class TaskRegistry {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  get(messageId: string): RunningTask | undefined {
    const task = this.#table.get(messageId) as Partial<RunningTask> | undefined;
    return typeof task?.taskId === "string" && typeof task.url === "string"
      ? { taskId: task.taskId, url: task.url }
      : undefined;
  }

  /** Resolves once the record is durable: only then may the bridge wait on the task. */
  remember(messageId: string, task: RunningTask): Promise<void> {
    return this.#table.set(messageId, task);
  }

  /** The task is over; a failure to delete is logged (a stale entry is found not to be running). */
  forget(messageId: string): void {
    this.#table.delete(messageId);
  }
}
