/**
 * @module
 * The circuits of the agents the pipelines call. Each agent endpoint has its own (one Archestra
 * serves every prompt, and one prompt's failing LLM provider says nothing of the others): it opens
 * while that agent fails every call (`down`) or refuses the bridge (`refused`). Above them each host
 * has one more, which opens only when several of its agents cannot be reached at once (connection
 * refused, HTTP 5xx, no answer in time): then the host itself is down, and its other agents wait
 * too instead of each finding out on its own. Each circuit has a key, so that flow control can
 * pause exactly the topics whose pipelines call through it.
 *
 * @example
 * ```ts
 * import { AgentCircuits } from "./agent_circuits.ts";
 * const circuits = new AgentCircuits({ threshold: 1, onChange: () => {}, onHolding: () => {} });
 * const url = (id: string) => `http://agents.local:9000/v1/a2a/${id}`;
 * if (circuits.keysOf(url("p-1")).join() !== "host http://agents.local:9000,agent http://agents.local:9000/v1/a2a/p-1") {
 *   throw new Error("one key per host, one per agent endpoint");
 * }
 * circuits.agent(url("p-1")).failed("call", { unreachable: false }); // its LLM provider fails
 * if (circuits.agent(url("p-2")).open || circuits.host(url("p-2")).open) throw new Error("one agent's failure stays its own");
 * circuits.agent(url("p-2")).failed("call", { unreachable: true }); // cannot reach it
 * circuits.agent(url("p-3")).failed("call", { unreachable: true }); // nor this one: the host is down
 * if (!circuits.host(url("p-4")).open) throw new Error("several unreachable agents open their host's circuit");
 * circuits.dispose();
 * ```
 */
import { redact } from "../secrets.ts";
import { Circuit, type CircuitState } from "../circuit.ts";

/** How many of a host's agents must be unreachable at once for the host to count as down. */
export const HOST_DOWN_AGENTS = 2;

export interface AgentCircuitsOptions {
  /** Failures in a row (that are evidence of an outage) that open an agent's circuit. */
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

/** The keys of the circuits a call to `url` passes: its host's, then its agent endpoint's. */
export function circuitKeysOf(url: string): [string, string] {
  return [`host ${new URL(url).origin}`, `agent ${url}`];
}

export class AgentCircuits {
  readonly #options: AgentCircuitsOptions;
  readonly #circuits = new Map<string, Circuit>();
  /** The agents' circuits of each host (by origin). */
  readonly #agentsOf = new Map<string, Circuit[]>();

  constructor(options: AgentCircuitsOptions) {
    this.#options = options;
  }

  /** The keys of the circuits a call to `url` passes through: its host's, then its agent's. */
  keysOf(url: string): [string, string] {
    return circuitKeysOf(url);
  }

  /** The circuit of `url`'s host, which opens while several of its agents cannot be reached. */
  host = (url: string): Circuit => {
    const origin = new URL(url).origin;
    return this.#circuit(this.keysOf(url)[0], redact(origin), Number.POSITIVE_INFINITY);
  };

  /** The circuit of the agent endpoint `url`, which opens while it fails every call or refuses the bridge. */
  agent = (url: string): Circuit => {
    const key = this.keysOf(url)[1];
    const known = this.#circuits.get(key);
    if (known) return known;
    // Labelled without credentials or query (where a key may sit in a form redact() does not know).
    const { origin, pathname } = new URL(url);
    const circuit = this.#circuit(key, redact(origin + pathname), this.#options.threshold, () => {
      const agents = this.#agentsOf.get(origin)!;
      if (agents.filter((agent) => agent.unreachable).length >= HOST_DOWN_AGENTS) this.host(url).trip();
    });
    const agents = this.#agentsOf.get(origin) ?? [];
    agents.push(circuit);
    this.#agentsOf.set(origin, agents);
    return circuit;
  };

  /** Whether any circuit is open now. */
  get anyOpen(): boolean {
    return [...this.#circuits.values()].some((circuit) => circuit.open);
  }

  #circuit(key: string, label: string, threshold: number, onOpen?: () => void): Circuit {
    let circuit = this.#circuits.get(key);
    if (!circuit) {
      circuit = new Circuit({
        threshold,
        probeDelayMs: this.#options.probeDelayMs,
        maxProbeDelayMs: this.#options.maxProbeDelayMs,
        onChange: (open, state, reason) => {
          this.#options.onChange({ key, label, open, state, reason });
          if (state === "down") onOpen?.();
        },
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
