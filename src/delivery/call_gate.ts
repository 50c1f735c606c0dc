/**
 * @module
 * The gate agent calls pass through, closed while the consumer subscribes again (a topic appeared).
 * kafkajs can only add topics by leaving the group and joining again, after which every message not
 * committed is delivered again: so before it leaves, no new call starts, the calls already made
 * finish (their jobs holding a pass until their outcomes are settled), and what they finished is
 * committed. A message whose call had not started is delivered again and called once; none is
 * called twice.
 *
 * @example
 * ```ts
 * import { CallGate } from "./call_gate.ts";
 * const gate = new CallGate();
 * const release = await gate.enter(); // open: at once
 * gate.close();
 * let idle = false;
 * const draining = gate.idle().then(() => idle = true);
 * const waiting = gate.enter(); // closed: waits
 * release(); // the call's outcome is settled
 * await draining;
 * if (!idle) throw new Error("idle once every pass is released");
 * gate.open();
 * (await waiting)();
 * ```
 */
export class CallGate {
  #closed = false;
  #held = 0;
  #opened = Promise.withResolvers<void>();
  #idle = new Set<() => void>();

  /** Whether new calls wait now. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Passes held now: calls made whose outcomes are not yet settled. */
  get held(): number {
    return this.#held;
  }

  /** No new call starts until {@link open}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#opened = Promise.withResolvers<void>();
  }

  open(): void {
    if (!this.#closed) return;
    this.#closed = false;
    this.#opened.resolve();
  }

  /**
   * Waits while the gate is closed, then takes a pass: call the function returned once the call's
   * outcome is settled (once; later calls do nothing). Rejects when `signal` aborts first.
   */
  async enter(signal?: AbortSignal): Promise<() => void> {
    while (this.#closed) {
      signal?.throwIfAborted();
      const aborted = Promise.withResolvers<void>();
      const onAbort = () => aborted.resolve();
      signal?.addEventListener("abort", onAbort, { once: true });
      await Promise.race([this.#opened.promise, aborted.promise]);
      signal?.removeEventListener("abort", onAbort);
    }
    signal?.throwIfAborted();
    this.#held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#held > 0) return;
      for (const wake of this.#idle) wake();
      this.#idle.clear();
    };
  }

  /** Resolves once no pass is held, or at once when `signal` aborts. */
  idle(signal?: AbortSignal): Promise<void> {
    if (this.#held === 0 || signal?.aborted) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#idle.add(resolve);
    const onAbort = () => resolve();
    signal?.addEventListener("abort", onAbort, { once: true });
    return promise.finally(() => {
      signal?.removeEventListener("abort", onAbort);
      this.#idle.delete(resolve);
    });
  }
}

/** Releases the pass a job holds, if any (see `Job.callPass`): its call is over, or it waits for something else now. */
export function releasePass(job: { callPass?: () => void }): void {
  const release = job.callPass;
  job.callPass = undefined;
  release?.();
}
