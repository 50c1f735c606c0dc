/**
 * @module
 * How a bridge stops, in one order whoever asks (a signal, a fatal error, the pipeline ending by
 * itself): intake stops and waits end (`stopping`); the work in flight finishes, or is cut at the
 * end of the grace period (`cut`: its jobs are abandoned, their offsets left uncommitted); timers
 * and watchers are released; what finished is committed; every client disconnects. Parts add their
 * steps to a phase as they are made, so nothing refers to a part made later.
 *
 * @example
 * ```ts
 * import { Lifecycle } from "./lifecycle.ts";
 * const order: string[] = [];
 * const life = new Lifecycle({ graceMs: 1_000 });
 * life.on("disconnect", () => order.push("disconnect"));
 * life.on("intake", () => order.push("intake"));
 * life.on("commit", () => order.push("commit"));
 * life.running(Promise.resolve());
 * await life.stop();
 * if (order.join() !== "intake,commit,disconnect" || !life.stopping.aborted) throw new Error(order.join());
 * ```
 */
import { errorMessage, FatalError } from "./errors.ts";

/** The phases of a stop, in their order; the work in flight is awaited between `intake` and `release`. */
export type Phase = "intake" | "release" | "commit" | "disconnect";

export class Lifecycle {
  readonly #graceMs: number;
  readonly #stopping = new AbortController();
  readonly #cut = new AbortController();
  readonly #steps: Record<Phase, (() => unknown)[]> = { intake: [], release: [], commit: [], disconnect: [] };
  #run: Promise<unknown> = Promise.resolve();
  #stopped: Promise<void> | undefined;

  constructor(options: { graceMs: number }) {
    this.#graceMs = options.graceMs;
  }

  /** Fires when a stop begins: no new intake, and waits (for a slot, a circuit, a retry) end. */
  get stopping(): AbortSignal {
    return this.#stopping.signal;
  }

  /** Fires at the end of the grace period: calls still running are cut, and their jobs abandoned. */
  get cut(): AbortSignal {
    return this.#cut.signal;
  }

  /** Whether a stop has begun. */
  get stopped(): boolean {
    return this.#stopped !== undefined;
  }

  /** Adds a step to a phase of the stop. Steps of `disconnect` run together, each settled whatever the others do. */
  on(phase: Phase, step: () => unknown): void {
    this.#steps[phase].push(step);
  }

  /** The work in flight: a stop waits for it (within the grace period), and its failure is the stop's reason. */
  running(run: Promise<unknown>): void {
    this.#run = run;
  }

  /** Stops, once: resolves when everything is closed, rejects with a {@link FatalError} when `reason` (or the run) failed. */
  stop(reason?: unknown): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping.abort();
      for (const step of this.#steps.intake) await step();
      const grace = setTimeout(() => this.#cut.abort(), this.#graceMs);
      const failed = await this.#run.then(() => undefined, (error) => error);
      clearTimeout(grace);
      for (const step of this.#steps.release) await step();
      // Only what finished is committed; a failure above leaves the rest for the next run.
      for (const step of this.#steps.commit) await step();
      await Promise.allSettled(this.#steps.disconnect.map(async (step) => await step()));
      const cause = reason ?? failed;
      if (cause) throw cause instanceof FatalError ? cause : new FatalError(`stopped: ${errorMessage(cause)}`);
    })();
    return this.#stopped;
  }
}
