/**
 * @module
 * The ledger: what the bridge owes Kafka. It knows which consumed messages have a durable outcome
 * (through an {@link OffsetTracker}), what may be committed, the records an exactly-once commit
 * must carry with those offsets, and the agent tasks to forget once their message is committed.
 *
 * Every job carries an {@link Ack}, its only handle on the ledger: it is split when a job becomes
 * several (a fan-out), settled once per outcome, and goes stale when the consumer's assignment
 * changes, after which Kafka delivers the message again and the late outcome is ignored.
 *
 * @example
 * ```ts
 * import { Ledger } from "./ledger.ts";
 * const ledger = new Ledger();
 * const ackOf = ledger.receive("orders", 0, ["5", "6"], ["shipping"]);
 * ackOf("6", "shipping").done();
 * if (ledger.take().offsets[0].offset !== "5") throw new Error("5 is still pending");
 * ackOf("5", "shipping").done();
 * const commit = ledger.take();
 * if (commit.offsets[0].offset !== "7") throw new Error("both are done");
 * ledger.committed(commit);
 * ```
 */
import { type Ack, partitionId, recordBytes, type StagedRecord } from "../model.ts";
import { OffsetTracker, type TopicPartitionOffset } from "./offsets.ts";

/**
 * What a finished message costs while it waits for its partition's commit point, beside its records:
 * its offset's bookkeeping. An estimate, so that the budget also holds where nothing is staged (at-least-once).
 */
export const FINISHED_MESSAGE_BYTES = 128;

/** What one partition holds behind its commit point (see {@link Ledger.holdings}). */
export interface Holding {
  readonly topic: string;
  readonly partition: number;
  /** Its lowest unfinished offset, the commit point; undefined when nothing is unfinished. */
  readonly head: string | undefined;
  /** Bytes of what waits to be committed: staged records and the finished messages' bookkeeping. */
  readonly bytes: number;
}

/** An ack tied to no ledger: for jobs run outside the bridge (examples, tests). Never stale. */
export const unledgered: Ack = {
  stale: false,
  signal: new AbortController().signal,
  split: (extra) => Array(extra).fill(unledgered),
  done: () => {},
};

/**
 * One ack for several messages of one partition, in offset order (a window's events): stale when
 * any is, split into joint acks, and done all at once, with the records staged on the last, so the
 * transaction that commits the highest offset (and with it every other) carries them.
 */
export function jointAck(acks: readonly Ack[]): Ack {
  const last = acks.length - 1;
  return {
    get stale() {
      return acks.some((ack) => ack.stale);
    },
    // One partition's acks share a generation, and with it the signal.
    signal: acks[0].signal,
    split: (extra) => {
      // Acks go stale together (a new generation); checked first so that none is split in vain.
      if (acks.some((ack) => ack.stale)) return undefined;
      const parts = acks.map((ack) => ack.split(extra));
      if (parts.some((part) => part === undefined)) return undefined;
      return Array.from({ length: extra }, (_, index) => jointAck(parts.map((part) => part![index])));
    },
    done: (staged, taskKey) => acks.forEach((ack, i) => i === last ? ack.done(staged, taskKey) : ack.done()),
  };
}

/** What one commit carries: the offsets that became committable, and the records they settle. */
export interface Commit {
  readonly offsets: TopicPartitionOffset[];
  readonly records: StagedRecord[];
  /** The same, per input partition: its new offset and the records of the messages it passes. */
  readonly parts: { readonly offset: TopicPartitionOffset; readonly records: StagedRecord[] }[];
}

export interface LedgerOptions {
  /** Forgets an agent task (see src/a2a/task_registry.ts) once its message's offset is committed. */
  forgetTask?: (key: string) => void;
  /**
   * Outcomes are written once they are acked (at-least-once): messages finished behind an
   * unfinished one are remembered across an assignment change, and not handled again when Kafka
   * delivers them again (see {@link Ledger.unfinished}). With exactly-once their records are only
   * staged, and go with the generation: they must be handled again.
   */
  rememberFinished?: boolean;
}

export class Ledger {
  readonly #tracker = new OffsetTracker();
  readonly #forgetTask: (key: string) => void;
  /** Records of messages that still wait for other outcomes, by message. */
  #held = new Map<string, StagedRecord[]>();
  /** Records of finished messages, by partition, until the commit point passes their message. */
  #staged = new Map<
    string,
    { topic: string; partition: number; offset: bigint; records: StagedRecord[]; bytes: number }[]
  >();
  /** Bytes of the records in {@link #staged}, by partition, and in all. */
  #stagedBytes = new Map<string, number>();
  #stagedTotal = 0;
  /** Jobs not yet settled, by pipeline, in this generation. */
  #inFlight = new Map<string, number>();
  /** Tasks of finished messages, forgotten once a commit passes their offset. */
  /** Aborted when the current generation ends (see assignmentChanged). */
  #generationEnd = new AbortController();
  #tasks: { partition: string; offset: bigint; key: string }[] = [];
  readonly #rememberFinished: boolean;
  /** Offsets finished in earlier generations, above their partition's commit point, by partition. */
  #finished = new Map<string, Set<bigint>>();

  constructor(options: LedgerOptions = {}) {
    this.#forgetTask = options.forgetTask ?? (() => {});
    this.#rememberFinished = options.rememberFinished ?? false;
  }

  /**
   * Of `offsets`, consumed from one partition, those to handle: the others finished in an earlier
   * generation (their outcomes are written) and are taken in as finished now, so the commit point
   * passes them without their messages being handled, or their agents called, twice.
   */
  unfinished(topic: string, partition: number, offsets: readonly string[]): string[] {
    const finished = this.#finished.get(partitionId(topic, partition));
    if (!finished?.size) return [...offsets];
    return offsets.filter((offset) => {
      if (!finished.has(BigInt(offset))) return true;
      this.#tracker.register(topic, partition, offset, 0);
      return false;
    });
  }

  /** The partitions owned now: what is remembered of any other is forgotten (its new owner handles it). */
  owned(partitions: readonly { topic: string; partition: number }[]): void {
    const owned = new Set(partitions.map((p) => partitionId(p.topic, p.partition)));
    for (const id of [...this.#finished.keys()]) if (!owned.has(id)) this.#finished.delete(id);
  }

  /** Messages consumed and not yet finished, in this generation. */
  get pending(): number {
    return this.#tracker.pending;
  }

  /** Jobs of `pipeline` not yet settled, in this generation (a fanned-out message counts once per agent). */
  inFlight(pipeline: string): number {
    return this.#inFlight.get(pipeline) ?? 0;
  }

  #count(pipeline: string, change: number): void {
    this.#inFlight.set(pipeline, this.inFlight(pipeline) + change);
  }

  /**
   * A partition's lowest unfinished offset, and how many finished messages wait behind it (their
   * offsets, and with exactly-once their records, are held until it is done).
   */
  behind(topic: string, partition: number): { head: string | undefined; finished: number } {
    return this.#tracker.behind(topic, partition);
  }

  /**
   * Bytes of what waits behind commit points: finished messages' staged records (exactly-once) and
   * bookkeeping ({@link FINISHED_MESSAGE_BYTES} each). Cheap: read it as often as work settles.
   */
  get uncommittedBytes(): number {
    return this.#stagedTotal + FINISHED_MESSAGE_BYTES * this.#tracker.finishedBehind;
  }

  /** What each partition holds behind its commit point, for those that hold anything. */
  holdings(): Holding[] {
    const result = new Map<string, Holding>();
    for (const { topic, partition, head, finished } of this.#tracker.held()) {
      const id = partitionId(topic, partition);
      const bytes = (this.#stagedBytes.get(id) ?? 0) + FINISHED_MESSAGE_BYTES * finished;
      if (bytes > 0) result.set(id, { topic, partition, head, bytes });
    }
    for (const [id, bytes] of this.#stagedBytes) {
      if (result.has(id)) continue;
      const { topic, partition } = this.#staged.get(id)![0];
      result.set(id, { topic, partition, head: undefined, bytes });
    }
    return [...result.values()];
  }

  #addStaged(id: string, bytes: number): void {
    const total = (this.#stagedBytes.get(id) ?? 0) + bytes;
    if (total > 0) this.#stagedBytes.set(id, total);
    else this.#stagedBytes.delete(id);
    this.#stagedTotal += bytes;
  }

  /** Resolves once no message is pending, or at once when `signal` aborts. */
  idle(signal?: AbortSignal): Promise<void> {
    return this.#tracker.idle(signal);
  }

  /**
   * Takes in consumed messages of one partition, each needing an outcome from every pipeline that
   * reads it (none: finished at once), and returns the ack of one message's job in one pipeline.
   */
  receive(
    topic: string,
    partition: number,
    offsets: readonly string[],
    pipelines: readonly string[],
  ): (offset: string, pipeline: string) => Ack {
    for (const offset of offsets) this.#tracker.register(topic, partition, offset, pipelines.length);
    for (const pipeline of pipelines) this.#count(pipeline, offsets.length);
    const generation = this.#tracker.generation;
    const signal = this.#generationEnd.signal;
    return (offset, pipeline) => this.#ack(topic, partition, offset, pipeline, generation, signal);
  }

  #ack(
    topic: string,
    partition: number,
    offset: string,
    pipeline: string,
    generation: number,
    signal: AbortSignal,
  ): Ack {
    const stale = () => generation !== this.#tracker.generation;
    return {
      get stale() {
        return stale();
      },
      signal,
      split: (extra) => {
        if (stale()) return undefined;
        this.#tracker.register(topic, partition, offset, extra);
        this.#count(pipeline, extra);
        return Array.from({ length: extra }, () => this.#ack(topic, partition, offset, pipeline, generation, signal));
      },
      done: (staged, taskKey) => {
        if (stale()) return;
        this.#count(pipeline, -1);
        this.#settle(topic, partition, offset, staged ?? [], taskKey);
      },
    };
  }

  #settle(topic: string, partition: number, offset: string, staged: readonly StagedRecord[], taskKey?: string): void {
    this.#tracker.done(topic, partition, offset);
    // A message's records wait for its last outcome, then for the commit point to pass it (see
    // take): a transaction holds a message's records exactly when it holds the offset that settles them.
    const id = `${partitionId(topic, partition)}\u0000${offset}`;
    const records = this.#held.get(id) ?? [];
    records.push(...staged);
    if (this.#tracker.outstanding(topic, partition, offset) > 0) {
      if (records.length) this.#held.set(id, records);
    } else if (records.length) {
      this.#held.delete(id);
      const at = partitionId(topic, partition);
      const list = this.#staged.get(at) ?? [];
      const bytes = records.reduce((sum, { record }) => sum + recordBytes(record), 0);
      list.push({ topic, partition, offset: BigInt(offset), records, bytes });
      this.#staged.set(at, list);
      this.#addStaged(at, bytes);
    }
    if (taskKey !== undefined) {
      this.#tasks.push({ partition: partitionId(topic, partition), offset: BigInt(offset), key: taskKey });
    }
  }

  /** What may be committed now: offsets that moved, with the records of the messages they pass. */
  take(): Commit {
    const offsets = this.#tracker.committable();
    const parts = offsets.map((offset) => {
      const id = partitionId(offset.topic, offset.partition);
      const point = BigInt(offset.offset);
      const list = this.#staged.get(id) ?? [];
      const left = list.filter((message) => message.offset >= point);
      if (left.length) this.#staged.set(id, left);
      else this.#staged.delete(id);
      const passed = list.filter((message) => message.offset < point);
      this.#addStaged(id, -passed.reduce((sum, message) => sum + message.bytes, 0));
      return { offset, records: passed.flatMap((m) => m.records) };
    });
    return { offsets, records: parts.flatMap((part) => part.records), parts };
  }

  /** Notes that `commit` is stored in Kafka, and forgets the agent tasks it settles. */
  committed(commit: Commit): void {
    this.#tracker.markCommitted(commit.offsets);
    const points = new Map(commit.offsets.map((o) => [partitionId(o.topic, o.partition), BigInt(o.offset)]));
    for (const [id, point] of points) {
      const finished = this.#finished.get(id);
      if (!finished) continue;
      for (const offset of finished) if (offset < point) finished.delete(offset);
      if (!finished.size) this.#finished.delete(id);
    }
    this.#tasks = this.#tasks.filter((task) => {
      const point = points.get(task.partition);
      if (point === undefined || task.offset >= point) return true;
      this.#forgetTask(task.key);
      return false;
    });
  }

  /**
   * The consumer's assignment changed (a rebalance, a rejoin, a restart, a new subscription):
   * Kafka delivers every uncommitted message again. Returns what is finished, to commit, and starts
   * a new generation: the rest is forgotten and its acks go stale.
   */
  assignmentChanged(): Commit {
    const finished = this.take();
    if (this.#rememberFinished) {
      for (const { topic, partition, offsets } of this.#tracker.finishedAbove()) {
        const id = partitionId(topic, partition);
        const set = this.#finished.get(id) ?? new Set();
        for (const offset of offsets) set.add(offset);
        this.#finished.set(id, set);
      }
    }
    this.#tracker.reset();
    // The work of the generation that ends stops now: its waits and calls end.
    this.#generationEnd.abort();
    this.#generationEnd = new AbortController();
    this.#held.clear();
    this.#staged.clear();
    this.#stagedBytes.clear();
    this.#stagedTotal = 0;
    this.#inFlight.clear();
    // Tasks of messages Kafka delivers again are recorded again when those finish; only the ones
    // this last commit settles are still to forget.
    const points = new Map(finished.offsets.map((o) => [partitionId(o.topic, o.partition), BigInt(o.offset)]));
    this.#tasks = this.#tasks.filter((task) => task.offset < (points.get(task.partition) ?? -1n));
    return finished;
  }
}
