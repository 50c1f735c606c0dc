/**
 * @module
 * Commits: what the {@link Ledger} says is committable, stored in Kafka one commit at a time, in the
 * order asked. With at-least-once delivery a commit stores offsets for the group; with exactly-once
 * it is a transaction holding the staged records with the offsets that settle them. The offsets of
 * a failed offset commit are carried into the next one (the ledger may have forgotten them since:
 * an assignment change takes them out); a failed transaction is fatal, because its records are
 * gone with it.
 *
 * @example
 * ```ts
 * import { Commits } from "./commits.ts";
 * import { Ledger } from "./ledger.ts";
 * const ledger = new Ledger();
 * const stored: string[] = [];
 * const commits = new Commits({ ledger, write: ({ offsets }) => { stored.push(...offsets.map((o) => o.offset)); return Promise.resolve(); }, fatal: () => {} });
 * ledger.receive("t", 0, ["0"], ["p"])("0", "p").done();
 * await commits.now();
 * if (stored.join() !== "1") throw new Error("committed past offset 0");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../errors.ts";
import type { Commit, Ledger } from "./ledger.ts";
import { partitionId } from "../model.ts";
import type { TopicPartitionOffset } from "./offsets.ts";

const log = getLogger(["agentstream", "commit"]);

export interface CommitsOptions {
  ledger: Ledger;
  /** Stores one commit in Kafka, and resolves with what it stored when that is less; rejects when it did not. */
  write: (commit: Commit) => Promise<Commit | void>;
  /** Whether a failed write loses what it carried (a transaction's records): then `fatal` is called. */
  losesRecords?: boolean;
  /** Called once when a commit failed in a way that must stop the process. */
  fatal: (error: unknown) => void;
  /** Called after each stored commit. */
  onCommitted?: (commit: Commit) => void;
}

export class Commits {
  readonly #options: CommitsOptions;
  #queue: Promise<void> = Promise.resolve();
  #broken = false;
  /** Offsets of a failed commit, per partition, to store with the next. */
  #carried = new Map<string, TopicPartitionOffset>();
  /** Commit cycles run, including those that found nothing new to store. */
  checks = 0;
  /** Commits that stored something. */
  stored = 0;

  constructor(options: CommitsOptions) {
    this.#options = options;
  }

  /** Commits what is committable when the commit's turn comes (so it includes what finished meanwhile). */
  now(): Promise<void> {
    return this.#enqueue(() => this.#options.ledger.take());
  }

  /** Runs `task` in the commits' turn: no commit runs meanwhile. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(task);
    this.#queue = result.then(() => {}, () => {});
    return result;
  }

  /**
   * The partitions owned now (after an assignment change): offsets carried for any other are
   * dropped, since committing them would fail every commit (a deleted topic) or move back an
   * offset another member owns now. Their messages are handled by whoever owns them. In turn with
   * the commits: the commit of what finished before the change is tried first.
   */
  owned(partitions: readonly { topic: string; partition: number }[]): Promise<void> {
    const owned = new Set(partitions.map((p) => partitionId(p.topic, p.partition)));
    return this.exclusive(() => {
      for (const id of [...this.#carried.keys()]) {
        if (!owned.has(id)) this.#carried.delete(id);
      }
      return Promise.resolve();
    });
  }

  /** Commits `commit`, taken earlier (what was finished when the assignment changed). */
  these(commit: Commit): Promise<void> {
    return this.#enqueue(() => commit);
  }

  #enqueue(take: () => Commit): Promise<void> {
    this.#queue = this.#queue.then(() => this.#write(this.#withCarried(take())));
    return this.#queue;
  }

  /** `commit` with the carried offsets of partitions it leaves out or commits lower. */
  #withCarried(commit: Commit): Commit {
    if (!this.#carried.size) return commit;
    const offsets = new Map(this.#carried);
    for (const o of commit.offsets) {
      const carried = offsets.get(partitionId(o.topic, o.partition));
      if (!carried || BigInt(o.offset) > BigInt(carried.offset)) offsets.set(partitionId(o.topic, o.partition), o);
    }
    this.#carried.clear();
    return { ...commit, offsets: [...offsets.values()] };
  }

  async #write(commit: Commit): Promise<void> {
    this.checks++;
    if (this.#broken || (!commit.offsets.length && !commit.records.length)) return;
    try {
      commit = (await this.#options.write(commit)) ?? commit;
    } catch (error) {
      if (this.#options.losesRecords) {
        // The records are gone with the aborted transaction: commit nothing else. Their messages
        // are handled again by the next run.
        this.#broken = true;
        this.#options.fatal(new Error(`a transaction failed: ${errorMessage(error)}`));
      } else {
        log.warn("commit failed, will try again: {error}", { error: errorMessage(error) });
        for (const o of commit.offsets) this.#carried.set(partitionId(o.topic, o.partition), o);
      }
      return;
    }
    this.#options.ledger.committed(commit);
    this.stored++;
    this.#options.onCommitted?.(commit);
    log.debug("committed {offsets}", { offsets: commit.offsets });
  }
}
