/**
 * @module
 * Tasks that stopped to ask (`input-required`, `auth-required`) and wait for an answer from Kafka,
 * kept in the bridge's {@link Table} (a compacted topic) by task id: what the task needs to go on
 * (its endpoint, conversation and route), the message that started it (where its reply and failures
 * go), the question it waits on and when it is given up. An entry is written, and durable, before
 * the question is published and the message committed, so a waiting task holds no offset; it is
 * deleted once the answer's outcome is committed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryTable } from "../state/table.ts";
 * import { AskingTasks } from "./asking_tasks.ts";
 * const asking = new AskingTasks(new MemoryTable());
 * assert.equal(await asking.find("t-1"), undefined);
 * ```
 */
import type { WaitingTask } from "../model.ts";
import type { Table } from "../state/table.ts";

const PREFIX = "asking/";

/** Tasks waiting for answers, by task id. */
export class AskingTasks {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  /** The table key of a task's entry (what the ledger deletes once an answer is committed). */
  static key(taskId: string): string {
    return `${PREFIX}${taskId}`;
  }

  /**
   * The waiting task with this id, as it is now: the table is read to its end first, since another
   * replica may have written (or deleted) it a moment ago. Answers are few: a read each is cheap.
   */
  async find(taskId: string): Promise<WaitingTask | undefined> {
    await this.#table.sync();
    return this.#get(taskId);
  }

  /** Resolves once the entry is durable: only then may the question be published. */
  remember(task: WaitingTask): Promise<void> {
    return this.#table.set(AskingTasks.key(task.taskId), task);
  }

  /** The tasks whose deadline has passed. */
  expired(now = Date.now()): WaitingTask[] {
    return this.#table.entries(PREFIX).flatMap(([, value]) => {
      const task = value as WaitingTask;
      return isWaiting(task) && Date.parse(task.deadline) <= now ? [task] : [];
    });
  }

  /** When the next deadline falls (ms since the epoch), if any task waits. */
  nextDeadline(): number | undefined {
    const deadlines = this.#table.entries(PREFIX).flatMap(([, value]) =>
      isWaiting(value) ? [Date.parse(value.deadline)] : []
    );
    return deadlines.length ? Math.min(...deadlines) : undefined;
  }

  #get(taskId: string): WaitingTask | undefined {
    const value = this.#table.get(AskingTasks.key(taskId));
    return isWaiting(value) ? value : undefined;
  }
}

function isWaiting(value: unknown): value is WaitingTask {
  const task = value as Partial<WaitingTask> | undefined;
  return typeof task?.taskId === "string" && typeof task.url === "string" && typeof task.deadline === "string" &&
    typeof task.source?.topic === "string";
}
