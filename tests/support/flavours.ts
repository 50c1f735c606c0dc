/** The kinds of agent there are, as the demo agent plays them: every agent-facing scenario runs on each. */
import type { Flavour } from "../../src/agent/demo_agent.ts";

export interface AgentFlavour {
  name: string;
  flavour: Flavour;
  /** Archestra's endpoint the bridge calls it on (ARCHESTRA_A2A_VERSION 0.3: /v1, 1.0: /v2). */
  api: "v1" | "v2";
  /** The A2A version it speaks there. */
  version: "0.3" | "1.0";
}

/** Archestra's `/v1` (bare Message, errors at HTTP 200), its `/v2` (A2A 1.0, its own errors and ids), the SDK 1.x and 0.3. */
export const AGENT_FLAVOURS: readonly AgentFlavour[] = [
  { name: "Archestra /v1", flavour: "archestra-v1", api: "v1", version: "0.3" },
  { name: "Archestra /v2", flavour: "archestra-v1", api: "v2", version: "1.0" },
  { name: "SDK 1.x", flavour: "a2a-1.0", api: "v2", version: "1.0" },
  { name: "SDK 0.3", flavour: "a2a-0.3", api: "v1", version: "0.3" },
];

/** The A2A version (ARCHESTRA_A2A_VERSION) that calls Archestra's `/v1` or `/v2`. */
export function a2aOf(api: "v1" | "v2"): "0.3" | "1.0" {
  return api === "v2" ? "1.0" : "0.3";
}
