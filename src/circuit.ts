/**
 * @module
 * A circuit breaker for one agent endpoint (or one host; an output topic uses its `refused` state,
 * see src/kafka/output_topics.ts). After `threshold` transient failures in a
 * row that are evidence of an outage (and no success between them) the agent is taken to be down:
 * the circuit opens, callers wait instead of calling, and one probe call at a time is let through,
 * with doubling pauses, until one succeeds and the circuit closes. So an outage stalls the pipeline;
 * it does not empty the topic into the DLQ.
 *
 * Not every failure is evidence. A message's first call that the agent answers with an error about
 * that call (a provider's rate limit passed on as `-32603`, an HTTP 429) says nothing of the others:
 * in a burst every first call may fail that way while every retry succeeds. Such failures slow the
 * adaptive limit, and count here only once the same message fails again. Probes are chosen among
 * the waiting retries first, for the same reason: a message that already failed once is the one
 * whose next call says most, and any success closes the circuit.
 *
 * An agent that refuses the caller (a token it does not accept, an agent it does not know) opens
 * the circuit at once, in the `refused` state: every message would be refused the same way until a
 * person acts, so none is failed for it; probes go on until the agent accepts again.
 *
 * @example
 * ```ts
 * import { Circuit } from "./circuit.ts";
 * const circuit = new Circuit({ threshold: 2 });
 * for (const _ of [1, 2]) {
 *   const role = await circuit.acquire(); // "call", or "probe" while open
 *   circuit.failed(role); // the call failed; after a call that worked: circuit.succeeded()
 * }
 * if (!circuit.open) throw new Error("two failed calls in a row open it");
 * ```
 */
/** The longest pause between probes of an open circuit, unless configured: bounds how long a recovered agent waits to be noticed. */
export const MAX_PROBE_DELAY_MS = 10_000;

/** `closed`: calls go through; `down`: the agent fails every call; `refused`: it refuses the caller. */
export type CircuitState = "closed" | "down" | "refused";

export interface CircuitOptions {
  /** Transient failures in a row that open the circuit. */
  threshold?: number;
  /** First pause before a probe; doubles up to `maxProbeDelayMs`. @default {1000} */
  probeDelayMs?: number;
  /** @default {MAX_PROBE_DELAY_MS} */
  maxProbeDelayMs?: number;
  /** Called on every change of state (`open` is `state !== "closed"`), with the agent's words for a refusal. */
  onChange?: (open: boolean, state: CircuitState, reason?: string) => void;
  /**
   * Called when {@link Circuit.holding} changes: whether callers wait on the open circuit (or a
   * probe is out). Fetching for the agent pauses only while it holds, so an open circuit that
   * nobody waits on lets the next message in to be its probe.
   */
  onHolding?: (holding: boolean) => void;
}

/** What a failed call says about the agent. */
export interface FailureEvidence {
  /** Whether it counts towards opening the circuit (default true); see the module's doc. */
  evidence?: boolean;
  /**
   * The agent could not be reached at all (connection refused, no answer in time, HTTP 5xx): the
   * kind of failure a whole host shows when it is down, unlike one agent's run failing.
   */
  unreachable?: boolean;
}

export class Circuit {
  readonly #threshold: number;
  readonly #firstDelay: number;
  readonly #maxDelay: number;
  readonly #onChange: (open: boolean, state: CircuitState, reason?: string) => void;
  readonly #onHolding: (holding: boolean) => void;
  #holding = false;
  #holdingCheck: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;
  /** Whether every failure counted since the last success was `unreachable`. */
  #allUnreachable = true;
  #downUnreachable = false;
  #successes = 0;
  #state: CircuitState = "closed";
  #delay: number;
  #probing = false;
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Callers waiting while open; see {@link acquire} for which is woken as the probe. */
  #waiting: { resolve: (role: "call" | "probe") => void; retry: boolean; ready: () => boolean }[] = [];

  constructor(options: CircuitOptions = {}) {
    this.#threshold = options.threshold ?? 5;
    this.#firstDelay = options.probeDelayMs ?? 1_000;
    this.#maxDelay = options.maxProbeDelayMs ?? MAX_PROBE_DELAY_MS;
    this.#delay = this.#firstDelay;
    this.#onChange = options.onChange ?? (() => {});
    this.#onHolding = options.onHolding ?? (() => {});
  }

  /** Whether callers wait on the open circuit, or a probe is out. */
  get holding(): boolean {
    return this.open && (this.#waiting.length > 0 || this.#probing);
  }

  /**
   * Reports a change of {@link holding} once the current turn's callers have settled: a failed
   * probe that waits again at once does not flap fetching off and on.
   */
  #checkHolding(): void {
    if (this.#holdingCheck !== undefined) return;
    this.#holdingCheck = setTimeout(() => {
      this.#holdingCheck = undefined;
      if (this.holding === this.#holding) return;
      this.#holding = this.holding;
      this.#onHolding(this.#holding);
    }, 0);
  }

  get open(): boolean {
    return this.#state !== "closed";
  }

  get state(): CircuitState {
    return this.#state;
  }

  /** Whether the circuit is down because the agent could not be reached (not because its calls failed). */
  get unreachable(): boolean {
    return this.#state === "down" && this.#downUnreachable;
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
    if (this.open) return;
    this.#downUnreachable = true;
    this.#set("down");
  }

  /**
   * The agent refused the caller (`role` is what {@link acquire} said): the circuit opens at once
   * in the `refused` state; a refused probe waits twice as long before the next.
   */
  refused(role: "call" | "probe" = "call", reason?: string): void {
    this.#reset();
    if (this.#state !== "refused") this.#set("refused", reason);
    if (role === "probe") this.#backOff();
  }

  /**
   * Resolves when a call may be made: at once while closed (`"call"`), else when this caller is
   * chosen as the next probe (`"probe"`) or the circuit closes. The probe is the first caller that
   * is `ready` (nothing else holds it back: a host's circuit asks whether the caller's own agent
   * circuit is closed), a `retry` (a message that already failed once) before a first call; then
   * the first retry, then the first caller. An aborted signal resolves `"call"` at once, so the
   * caller can notice the abort itself.
   */
  acquire(
    signal?: AbortSignal,
    options: { retry?: boolean; ready?: () => boolean } = {},
  ): Promise<"call" | "probe"> {
    if (!this.open || signal?.aborted) return Promise.resolve("call");
    return new Promise((resolve) => {
      const onAbort = () => {
        const index = this.#waiting.indexOf(waiter);
        if (index >= 0) this.#waiting.splice(index, 1);
        this.#checkHolding();
        resolve("call");
      };
      const waiter = {
        resolve: (role: "call" | "probe") => {
          signal?.removeEventListener("abort", onAbort);
          resolve(role);
        },
        retry: options.retry === true,
        ready: options.ready ?? (() => true),
      };
      this.#waiting.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#scheduleProbe();
      this.#checkHolding();
    });
  }

  /** A call got an answer (a reply, or an error the agent made on purpose): the agent is up. */
  succeeded(): void {
    this.#successes++;
    this.#reset();
    this.#probing = false;
    if (!this.open) return;
    this.#delay = this.#firstDelay;
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#set("closed");
    for (const waiter of this.#waiting.splice(0)) waiter.resolve("call");
  }

  /**
   * A call failed transiently (timeout, connection refused, 429/5xx, `-32603`); `role` is what
   * {@link acquire} said. A failed probe always backs off; other calls count only as `evidence`.
   */
  failed(role: "call" | "probe" = "call", { evidence = true, unreachable = false }: FailureEvidence = {}): void {
    if (this.open) {
      // A call that was already in flight when the circuit opened says nothing new; a probe says
      // how the agent fails now.
      if (role === "probe") {
        if (this.#state === "down") this.#downUnreachable = unreachable;
        this.#backOff();
      }
      return;
    }
    if (!evidence) return;
    this.#failures++;
    this.#allUnreachable &&= unreachable;
    if (this.#failures < this.#threshold) return;
    this.#downUnreachable = this.#allUnreachable;
    this.#set("down");
  }

  /**
   * A caller chosen by {@link acquire} will not call after all (it stopped, or its message went
   * stale): a probe passes to the next waiter at the same pause, so the circuit is never left with
   * a probe nobody makes.
   */
  skipped(role: "call" | "probe"): void {
    if (role !== "probe" || !this.#probing) return;
    this.#probing = false;
    this.#checkHolding();
    this.#scheduleProbe();
  }

  #reset(): void {
    this.#failures = 0;
    this.#allUnreachable = true;
  }

  #set(state: CircuitState, reason?: string): void {
    this.#state = state;
    this.#onChange(state !== "closed", state, reason);
    this.#checkHolding();
  }

  /** A probe failed: the next one waits twice as long. */
  #backOff(): void {
    this.#probing = false;
    this.#checkHolding();
    this.#delay = Math.min(this.#delay * 2, this.#maxDelay);
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    if (this.#probing || this.#probeTimer !== undefined || !this.#waiting.length) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      const ready = this.#waiting.filter((waiter) => waiter.ready());
      const best = ready.find((waiter) => waiter.retry) ?? ready[0] ?? this.#waiting.find((waiter) => waiter.retry);
      const at = best ? this.#waiting.indexOf(best) : 0;
      const [probe] = this.#waiting.splice(at, 1);
      if (!probe) return;
      this.#probing = true;
      probe.resolve("probe");
    }, this.#delay);
  }

  /** Stops the probe timer (shutdown). */
  dispose(): void {
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    clearTimeout(this.#holdingCheck);
    this.#holdingCheck = undefined;
  }
}
