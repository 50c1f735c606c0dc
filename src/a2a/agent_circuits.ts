/**
 * @module
 * The circuits of the agents the pipelines call: one per host for outages (a host that is down is
 * down for every agent on it), one per endpoint for refusals (a token refused by one agent says
 * nothing of the others). Each has a key, so that flow control can pause exactly the topics whose
 * pipelines call through it.
 *
 * @example
 * ```ts
 * import { AgentCircuits } from "./agent_circuits.ts";
 * const circuits = new AgentCircuits({ threshold: 5, onChange: () => {}, onHolding: () => {} });
 * const url = "http://agents.local:9000/v1/a2a/p-1";
 * if (circuits.keysOf(url).join() !== "host http://agents.local:9000,endpoint http://agents.local:9000/v1/a2a/p-1") {
 *   throw new Error("one outage key per host, one refusal key per endpoint");
 * }
 * if (circuits.outage(url) !== circuits.outage("http://agents.local:9000/v1/a2a/p-2")) throw new Error("shared per host");
 * circuits.dispose();
 * ```
 */
import { redact } from "../secrets.ts";
import { Circuit, type CircuitState } from "./circuit.ts";

export interface AgentCircuitsOptions {
  /** Transient failures in a row that open a host's circuit. */
  threshold: number;
  /** First pause before a probe (default 1 s, doubling up to `maxProbeDelayMs`). */
  probeDelayMs?: number;
  /** Longest pause between probes (default: the circuit's own). */
  maxProbeDelayMs?: number;
  /** Every change of a circuit's state, with its key and a label fit for logs and metrics. */
  onChange: (change: { key: string; label: string; open: boolean; state: CircuitState; reason?: string }) => void;
  /** Whether callers wait on a circuit now (see `Circuit.holding`): what pauses its routes. */
  onHolding: (key: string, holding: boolean) => void;
}

export class AgentCircuits {
  readonly #options: AgentCircuitsOptions;
  readonly #circuits = new Map<string, Circuit>();

  constructor(options: AgentCircuitsOptions) {
    this.#options = options;
  }

  /** The keys of the circuits a call to `url` passes through: its host's, then its endpoint's. */
  keysOf(url: string): [string, string] {
    return [`host ${new URL(url).origin}`, `endpoint ${url}`];
  }

  /** The circuit of `url`'s host, which opens while it fails every call. */
  outage = (url: string): Circuit => {
    const origin = new URL(url).origin;
    return this.#circuit(this.keysOf(url)[0], redact(origin), this.#options.threshold);
  };

  /** The circuit of the endpoint `url`, which opens while the agent refuses the bridge. */
  refusal = (url: string): Circuit => {
    // Labelled without credentials or query (where a key may sit in a form redact() does not know).
    const { origin, pathname } = new URL(url);
    return this.#circuit(this.keysOf(url)[1], redact(origin + pathname), Number.POSITIVE_INFINITY);
  };

  /** Whether any circuit is open now. */
  get anyOpen(): boolean {
    return [...this.#circuits.values()].some((circuit) => circuit.open);
  }

  #circuit(key: string, label: string, threshold: number): Circuit {
    let circuit = this.#circuits.get(key);
    if (!circuit) {
      circuit = new Circuit({
        threshold,
        probeDelayMs: this.#options.probeDelayMs,
        maxProbeDelayMs: this.#options.maxProbeDelayMs,
        onChange: (open, state, reason) => this.#options.onChange({ key, label, open, state, reason }),
        onHolding: (holding) => this.#options.onHolding(key, holding),
      });
      this.#circuits.set(key, circuit);
    }
    return circuit;
  }

  /** Stops every probe timer (shutdown). */
  dispose(): void {
    for (const circuit of this.#circuits.values()) circuit.dispose();
  }
}
