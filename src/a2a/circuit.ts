/**
 * A circuit breaker for one agent host. After `threshold` transient failures in a row (and no
 * success between them) the agent is taken to be down: the circuit opens, callers wait instead of
 * spending their retries, and one probe call at a time is let through, with doubling pauses, until
 * one succeeds and the circuit closes. So an outage stalls the pipeline; it does not empty the topic
 * into the DLQ.
 *
 * @example
 * ```ts
 * import { Circuit } from "./circuit.ts";
 * const circuit = new Circuit({ threshold: 5, onChange: (open) => console.log(open ? "agent down" : "agent back") });
 * const role = await circuit.acquire(); // "call", or "probe" while open
 * // ... make the call, then circuit.succeeded() or circuit.failed()
 * ```
 */
export interface CircuitOptions {
  /** Transient failures in a row that open the circuit. */
  threshold?: number;
  /** First pause before a probe; doubles up to `maxProbeDelayMs`. */
  probeDelayMs?: number;
  maxProbeDelayMs?: number;
  onChange?: (open: boolean) => void;
}

export class Circuit {
  readonly #threshold: number;
  readonly #firstDelay: number;
  readonly #maxDelay: number;
  readonly #onChange: (open: boolean) => void;
  #failures = 0;
  #successes = 0;
  #open = false;
  #delay: number;
  #probing = false;
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Callers waiting while open; the first is woken as the probe. */
  #waiting: { resolve: (role: "call" | "probe") => void }[] = [];

  constructor(options: CircuitOptions = {}) {
    this.#threshold = options.threshold ?? 5;
    this.#firstDelay = options.probeDelayMs ?? 1_000;
    this.#maxDelay = options.maxProbeDelayMs ?? 30_000;
    this.#delay = this.#firstDelay;
    this.#onChange = options.onChange ?? (() => {});
  }

  get open(): boolean {
    return this.#open;
  }

  /** Calls that got an answer so far; a caller compares two readings to see if the agent answered meanwhile. */
  get successes(): number {
    return this.#successes;
  }

  /**
   * Opens the circuit now: a caller has spent all its retries without the agent answering anyone
   * in the meantime, which is an outage however few calls there were, not one bad message.
   */
  trip(): void {
    if (this.#open) return;
    this.#open = true;
    this.#onChange(true);
  }

  /**
   * Resolves when a call may be made: at once while closed (`"call"`), else when this caller is
   * chosen as the next probe (`"probe"`) or the circuit closes. An aborted signal resolves `"call"`
   * at once, so the caller can notice the abort itself.
   */
  acquire(signal?: AbortSignal): Promise<"call" | "probe"> {
    if (!this.#open || signal?.aborted) return Promise.resolve("call");
    return new Promise((resolve) => {
      const onAbort = () => {
        const index = this.#waiting.indexOf(waiter);
        if (index >= 0) this.#waiting.splice(index, 1);
        resolve("call");
      };
      const waiter = {
        resolve: (role: "call" | "probe") => {
          signal?.removeEventListener("abort", onAbort);
          resolve(role);
        },
      };
      this.#waiting.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#scheduleProbe();
    });
  }

  /** A call got an answer (a reply, or an error the agent made on purpose): the agent is up. */
  succeeded(): void {
    this.#successes++;
    this.#failures = 0;
    this.#probing = false;
    if (!this.#open) return;
    this.#open = false;
    this.#delay = this.#firstDelay;
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    for (const waiter of this.#waiting.splice(0)) waiter.resolve("call");
    this.#onChange(false);
  }

  /** A call failed transiently (timeout, refused, 429/5xx); `role` is what {@link acquire} said. */
  failed(role: "call" | "probe" = "call"): void {
    this.#failures++;
    if (this.#open) {
      // A call that was already in flight when the circuit opened says nothing new.
      if (role !== "probe") return;
      this.#probing = false;
      this.#delay = Math.min(this.#delay * 2, this.#maxDelay);
      this.#scheduleProbe();
      return;
    }
    if (this.#failures >= this.#threshold) {
      this.#open = true;
      this.#onChange(true);
    }
  }

  #scheduleProbe(): void {
    if (this.#probing || this.#probeTimer !== undefined || !this.#waiting.length) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      const probe = this.#waiting.shift();
      if (!probe) return;
      this.#probing = true;
      probe.resolve("probe");
    }, this.#delay);
  }

  /** Stops the probe timer (shutdown). */
  dispose(): void {
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }
}
