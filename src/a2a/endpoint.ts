/**
 * @module
 * Where a route's agent is called: an agent given by URL as it is, a `prompt_id` on Archestra's
 * `/v1` or `/v2` A2A endpoint.
 *
 * @example
 * ```ts
 * import { agentEndpoint } from "./endpoint.ts";
 * const { url, version } = agentEndpoint({ promptId: "support" }, { archestraUrl: "http://localhost:9000", archestraA2a: "1.0" });
 * if (url !== "http://localhost:9000/v2/a2a/support" || version !== "1.0") throw new Error(url);
 * ```
 */
import type { AgentTarget } from "../model.ts";
import type { A2AVersion } from "./dialect.ts";

/** The Archestra a bridge calls for `prompt_id` routes. */
export interface Archestra {
  /** Base URL for `prompt_id` routes: calls go to `{archestraUrl}/v1/a2a/{prompt_id}` (A2A 0.3) or `/v2/` (1.0). */
  readonly archestraUrl: string;
  readonly archestraToken?: string;
  /** The A2A version prompt ids are called with, unless their route says (default 0.3): it picks the endpoint. */
  readonly archestraA2a?: A2AVersion;
}

/**
 * The endpoint and token a route calls, and the A2A version it speaks where the endpoint alone says:
 * a prompt id's version (its route's, else the default) picks Archestra's `/v1` (0.3) or `/v2` (1.0);
 * an agent given by URL says so in its card.
 */
export function agentEndpoint(
  agent: AgentTarget,
  ctx: Archestra,
): { url: string; token?: string; version?: A2AVersion } {
  if (agent.url !== undefined) return { url: agent.url, token: agent.token };
  const version = agent.a2a ?? ctx.archestraA2a ?? "0.3";
  return {
    url: `${ctx.archestraUrl}/${version === "1.0" ? "v2" : "v1"}/a2a/${encodeURIComponent(agent.promptId)}`,
    token: ctx.archestraToken,
    version,
  };
}
