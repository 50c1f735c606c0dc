/**
 * @module
 * Exactly-once, on joining the group: before fetching, take the assigned partitions' transactional
 * ids over, which fences every earlier holder (a frozen member, a pod being replaced) and waits for
 * its open transaction to end; then read the committed offsets again, which may have moved since
 * kafkajs read them. Without KIP-447 (kafkajs has none) this is what keeps a member that lost a
 * partition from committing replies that its new owner also writes. And a commit left to another
 * member ("fenced") with no join after it: this member was not told it lost the partition, or its
 * transaction timed out; either way it cannot go on, and stops after twice the session timeout.
 *
 * @example
 * ```ts
 * import { Claims, FencedTimer } from "./claims.ts";
 * import { Commits } from "../delivery/commits.ts";
 * import { FlowControl } from "../delivery/flow_control.ts";
 * import { Ledger } from "../delivery/ledger.ts";
 * const ledger = new Ledger();
 * const commits = new Commits({ ledger, write: () => Promise.resolve(), fatal: () => {} });
 * const claimed: string[] = [];
 * const claims = new Claims({
 *   commits,
 *   flow: new FlowControl({ topicsOf: () => [], apply: () => {} }),
 *   claim: (assigned) => { claimed.push(...assigned.map((p) => `${p.topic}/${p.partition}`)); return Promise.resolve(); },
 *   seekToCommitted: () => Promise.resolve(),
 *   fenced: new FencedTimer({ sessionTimeoutMs: 1_000, fatal: (error) => { throw error; } }),
 *   stopping: new AbortController().signal,
 *   fatal: (error) => { throw error; },
 * });
 * await claims.claim([{ topic: "t", partition: 0 }]);
 * if (claimed.join() !== "t/0") throw new Error("claimed");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { Commits } from "../delivery/commits.ts";
import type { FlowControl } from "../delivery/flow_control.ts";
import { errorMessage, FatalError } from "../errors.ts";
import type { TopicPartition } from "../model.ts";
import { abortableDelay } from "../util/abortable_delay.ts";

const log = getLogger(["agentstream", "claims"]);

export interface ClaimsOptions {
  commits: Commits;
  flow: FlowControl;
  /** Takes the partitions' transactional ids over (see `TransactionalOutput.claim`). */
  claim: (assigned: readonly TopicPartition[]) => Promise<void>;
  /** Moves the fetch positions to the committed offsets as the coordinator has them now. */
  seekToCommitted: (partitions: readonly TopicPartition[]) => Promise<void>;
  /** Told when a claim succeeded: the join answered the fenced commits before it. */
  fenced: FencedTimer;
  stopping: AbortSignal;
  /** Called when this member cannot go on: it must stop (and its replacement rejoin). */
  fatal: (error: FatalError) => void;
}

/**
 * A commit left to another member ("fenced") with no join after it: unless a join follows within
 * twice the session timeout, this member stops.
 */
export class FencedTimer {
  readonly #options: { sessionTimeoutMs: number; fatal: (error: FatalError) => void };
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: { sessionTimeoutMs: number; fatal: (error: FatalError) => void }) {
    this.#options = options;
  }

  /** A transaction was fenced. */
  fenced(): void {
    this.#timer ??= setTimeout(() => {
      this.#options.fatal(new FatalError("a transaction was fenced and no rebalance followed: restarting to rejoin"));
    }, 2 * this.#options.sessionTimeoutMs);
  }

  /** A join followed: the fenced commits are answered. */
  joined(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  dispose(): void {
    clearTimeout(this.#timer);
  }
}

export class Claims {
  readonly #options: ClaimsOptions;
  #claims = 0;

  constructor(options: ClaimsOptions) {
    this.#options = options;
  }

  /** Claims the partitions a join assigned: fetching pauses until it is done or a newer join overtakes it. */
  async claim(assigned: readonly TopicPartition[]): Promise<void> {
    const { commits, flow, stopping } = this.#options;
    const mine = ++this.#claims;
    const current = () => mine === this.#claims;
    flow.set({ kind: "claiming" }, true);
    try {
      // In the commits' turn, so no transaction is under way on a producer being replaced; and
      // not at all once a newer join overtook this one (its claim is the one that counts).
      await commits.exclusive(async () => {
        for (let attempt = 1; current(); attempt++) {
          try {
            await this.#options.claim(assigned);
            // Fenced commits before now (the old generation's, queued ahead of this) are answered by this join.
            this.#options.fenced.joined();
            await this.#options.seekToCommitted(assigned);
            return;
          } catch (error) {
            // Right after a broker restart the coordinator may not be there yet: try a few times.
            if (attempt >= 4) throw error;
            log.warn("could not take over the transactional ids of {assigned} yet: {error}", {
              assigned,
              error: errorMessage(error),
            });
            await abortableDelay(1_000 * attempt, stopping);
          }
        }
      });
    } catch (error) {
      // Without its partitions' transactional ids this member could commit nothing it does: stop.
      if (current()) {
        this.#options.fatal(new FatalError(`cannot take over the transactional ids: ${errorMessage(error)}`));
      }
    } finally {
      if (current()) flow.set({ kind: "claiming" }, false);
    }
  }
}
