/**
 * @module
 * Where a route's agent is called: an agent given by URL as it is, a `prompt_id` on Archestra's
 * `/v1` or `/v2` A2A endpoint.
 *
 * @example
 * ```ts
 * import { agentEndpoint } from "./endpoint.ts";
 * const { url, version } = agentEndpoint({ promptId: "support" }, { archestraUrl: "http://localhost:9000", archestraApi: "v2" });
 * if (url !== "http://localhost:9000/v2/a2a/support" || version !== "1.0") throw new Error(url);
 * ```
 */
import type { AgentTarget } from "../model.ts";
import type { A2AVersion } from "./dialect.ts";

/** The Archestra a bridge calls for `prompt_id` routes. */
export interface Archestra {
  /** Base URL for `prompt_id` routes: calls go to `{archestraUrl}/{archestraApi}/a2a/{prompt_id}`. */
  readonly archestraUrl: string;
  readonly archestraToken?: string;
  /** Archestra's endpoint for prompt ids: `v1` (A2A 0.3 shapes, the default) or `v2` (A2A 1.0). */
  readonly archestraApi?: "v1" | "v2";
}

/**
 * The endpoint and token a route calls, and the A2A version it speaks where the endpoint alone says
 * (Archestra's `/v1` speaks 0.3, its `/v2` 1.0); an agent given by URL says so in its card.
 */
export function agentEndpoint(
  agent: AgentTarget,
  ctx: Archestra,
): { url: string; token?: string; version?: A2AVersion } {
  if (agent.url !== undefined) return { url: agent.url, token: agent.token };
  const api = ctx.archestraApi ?? "v1";
  return {
    url: `${ctx.archestraUrl}/${api}/a2a/${encodeURIComponent(agent.promptId)}`,
    token: ctx.archestraToken,
    version: api === "v2" ? "1.0" : "0.3",
  };
}
