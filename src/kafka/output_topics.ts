/**
 * @module
 * Output topics the bridge cannot write. A responses or DLQ topic that does not exist where the
 * broker does not create topics, or that an ACL denies the bridge, fails every record sent to it
 * until a person acts, and today and tomorrow alike. So each output topic has a {@link Circuit}:
 * the first such failure opens it (`refused`, with the reason), the records wait instead of
 * failing, and one of them at a time probes the topic, with doubling pauses (up to 10 s), until
 * one is written and the circuit closes. While records wait, the pipelines writing to the topic
 * pause (their messages are not finished, so nothing past them is committed); the others flow.
 *
 * With exactly-once, records are written by the commits' transactions instead (see
 * src/kafka/transactions.ts): a transaction refused for a topic is aborted and its records held,
 * {@link OutputTopics.refuse} marks the topic, and {@link OutputTopics.probeDue} says when the held
 * records may try again, with the same doubling pauses; the pipelines pause while records are held.
 *
 * @example
 * ```ts
 * import { OutputTopics } from "./output_topics.ts";
 * const outputs = new OutputTopics({ probeDelayMs: 10 });
 * let tries = 0;
 * const send = () => ++tries === 1
 *   ? Promise.reject(Object.assign(new Error("denied"), { type: "TOPIC_AUTHORIZATION_FAILED" }))
 *   : Promise.resolve();
 * await outputs.write("orders.responses", "orders", send); // refused once, then written by the probe
 * if (tries !== 2 || outputs.unwritable.length) throw new Error("written once the topic took it");
 * outputs.dispose();
 * ```
 */
import { Circuit, MAX_PROBE_DELAY_MS } from "../circuit.ts";
import { Abandoned } from "../errors.ts";

/** Why a topic cannot be written: it does not exist (and is not created), or the bridge may not write it. */
export type UnwritableReason = "missing" | "denied";

/** What each reason asks of an operator, for the log line. */
export const UNWRITABLE_HELP: Record<UnwritableReason, string> = {
  missing:
    "the topic does not exist and the broker does not create it (auto.create.topics.enable=false): create it, or grant the bridge CREATE on it",
  denied:
    "the broker denies the bridge WRITE on it (TOPIC_AUTHORIZATION_FAILED): grant its principal WRITE on the topic",
};

/**
 * Why `error` (a kafkajs error, or one that wraps it as its `cause`, as kafkajs's retrier does) says
 * a topic cannot be written; undefined for any other error.
 */
export function unwritableReason(error: unknown): UnwritableReason | undefined {
  for (
    let cause = error as { type?: string; cause?: unknown } | undefined;
    cause;
    cause = cause.cause as typeof cause
  ) {
    if (cause.type === "UNKNOWN_TOPIC_OR_PARTITION") return "missing";
    if (cause.type === "TOPIC_AUTHORIZATION_FAILED") return "denied";
  }
  return undefined;
}

export interface OutputTopicsOptions {
  /** First pause before a probe (default 1 s, doubling up to `maxProbeDelayMs`, default 10 s). */
  probeDelayMs?: number;
  maxProbeDelayMs?: number;
  /**
   * A topic became unwritable (`reason`), or is no longer known to be: a record was written to it
   * (`written`), or none waits for it any more (`forgotten`: the next one finds out afresh).
   */
  onChange?: (
    topic: string,
    reason: UnwritableReason | undefined,
    how: "written" | "forgotten" | undefined,
    writers: ReadonlySet<string>,
  ) => void;
  /** Records wait on an unwritable topic (or stopped waiting): the pipelines that write it pause. */
  onHolding?: (topic: string, holding: boolean) => void;
}

export class OutputTopics {
  readonly #options: OutputTopicsOptions;
  readonly #circuits = new Map<string, Circuit>();
  readonly #reasons = new Map<string, UnwritableReason>();
  /** The pipelines that have written (or tried to write) each topic. */
  readonly #writers = new Map<string, Set<string>>();
  /** Exactly-once: when each refused topic may be tried again, and the pause before the next try. */
  readonly #probes = new Map<string, { at: number; delay: number }>();

  constructor(options: OutputTopicsOptions = {}) {
    this.#options = options;
  }

  /** The topics that cannot be written now, with why. */
  get unwritable(): { topic: string; reason: UnwritableReason }[] {
    return [...this.#reasons].map(([topic, reason]) => ({ topic, reason }));
  }

  /** The pipelines that write `topic`. */
  writersOf(topic: string): ReadonlySet<string> {
    return this.#writers.get(topic) ?? new Set();
  }

  /** Notes that `pipeline` writes `topic` (its records are staged for a transaction). */
  noteWriter(topic: string, pipeline: string): void {
    const writers = this.#writers.get(topic) ?? new Set();
    this.#writers.set(topic, writers.add(pipeline));
  }

  /**
   * Exactly-once: a transaction could not write `topic` (`reason`). The topic is marked (one
   * change reported, however many refusals), and its next try waits twice as long as the last.
   */
  refuse(topic: string, reason: UnwritableReason): void {
    const first = this.#options.probeDelayMs ?? 1_000;
    const last = this.#probes.get(topic)?.delay;
    const delay = last === undefined ? first : Math.min(2 * last, this.#options.maxProbeDelayMs ?? MAX_PROBE_DELAY_MS);
    this.#probes.set(topic, { at: Date.now() + delay, delay });
    const before = this.#reasons.get(topic);
    this.#reasons.set(topic, reason);
    if (before === undefined) this.#options.onChange?.(topic, reason, undefined, this.writersOf(topic));
  }

  /** Exactly-once: whether records for `topic` may be tried now (it is not refused, or its next try is due). */
  probeDue(topic: string): boolean {
    const probe = this.#probes.get(topic);
    return probe === undefined || Date.now() >= probe.at;
  }

  /** Exactly-once: a transaction wrote `topic`: it is writable (again). */
  written(topic: string): void {
    if (!this.#probes.delete(topic)) return;
    this.#reasons.delete(topic);
    this.#options.onChange?.(topic, undefined, "written", this.writersOf(topic));
  }

  /** Exactly-once: whether records for `topic` are held (its pipelines pause while they are). */
  hold(topic: string, holding: boolean): void {
    this.#options.onHolding?.(topic, holding);
  }

  /**
   * No record waits for `topic` any more (their jobs went stale, or were dropped): whether it can
   * be written is not known now, so it is no longer reported as unwritable. The next record tries.
   */
  forget(topic: string): void {
    this.#probes.delete(topic);
    this.#circuits.get(topic)?.dispose();
    this.#circuits.delete(topic);
    if (this.#reasons.delete(topic)) this.#options.onChange?.(topic, undefined, "forgotten", this.writersOf(topic));
  }

  /**
   * Writes with `send`, which produces to `topic` for `pipeline`. While the topic cannot be
   * written, waits, probing it one record at a time; throws {@link Abandoned} when the signal
   * (made only when a wait begins) aborts meanwhile, and any other error of `send` as it is.
   */
  async write(
    topic: string,
    pipeline: string,
    send: () => Promise<void>,
    signalOf?: () => AbortSignal,
  ): Promise<void> {
    this.noteWriter(topic, pipeline);
    const circuit = this.#circuitOf(topic);
    let signal: AbortSignal | undefined;
    for (;;) {
      if (circuit.open) signal ??= signalOf?.();
      const role = await circuit.acquire(signal);
      if (signal?.aborted) {
        circuit.skipped(role);
        throw new Abandoned(`not written to ${topic} (${this.#reasons.get(topic) ?? "stopped"})`);
      }
      try {
        await send();
      } catch (error) {
        const reason = unwritableReason(error);
        if (!reason) {
          circuit.skipped(role);
          throw error;
        }
        this.#reasons.set(topic, reason);
        circuit.refused(role, reason);
        continue;
      }
      circuit.succeeded();
      return;
    }
  }

  #circuitOf(topic: string): Circuit {
    let circuit = this.#circuits.get(topic);
    if (!circuit) {
      circuit = new Circuit({
        probeDelayMs: this.#options.probeDelayMs,
        maxProbeDelayMs: this.#options.maxProbeDelayMs,
        onChange: (open, _state, reason) => {
          if (!open) this.#reasons.delete(topic);
          this.#options.onChange?.(
            topic,
            open ? reason as UnwritableReason : undefined,
            "written",
            this.writersOf(topic),
          );
        },
        onHolding: (holding) => {
          this.#options.onHolding?.(topic, holding);
          // Open with nobody left to probe it: no longer known to be unwritable.
          if (!holding && circuit!.open) this.forget(topic);
        },
      });
      this.#circuits.set(topic, circuit);
    }
    return circuit;
  }

  /** Stops the probe timers (shutdown). */
  dispose(): void {
    for (const circuit of this.#circuits.values()) circuit.dispose();
  }
}
