/**
 * @module
 * Preflight: before consuming anything, fetch the agent card of every agent the pipelines call,
 * so that an unknown prompt id or a refused token stops the start with one clear line per route
 * instead of filling the DLQ. The card is looked for at `{endpoint}/.well-known/agent.json` (as
 * Archestra serves it for `/v1/a2a/{promptId}`), then at `{endpoint}/.well-known/agent-card.json`.
 * An agent that cannot be reached is only a warning: it may come up later, and the circuit breaker
 * handles an agent that is down.
 *
 * @example
 * ```ts
 * import { preflight } from "./preflight.ts";
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) =>
 *   new URL(request.url).pathname === "/v1/a2a/support/.well-known/agent.json"
 *     ? Response.json({ name: "support" })
 *     : new Response(null, { status: 404 }));
 * const base = `http://127.0.0.1:${server.addr.port}/v1/a2a`;
 * const { problems, cards } = await preflight([
 *   { url: `${base}/support`, where: "pipelines/a.yaml:routes[0].invoke" },
 *   { url: `${base}/suport`, where: "pipelines/a.yaml:routes[1].invoke" },
 * ]);
 * await server.shutdown();
 * if (cards.get(`${base}/support`)?.name !== "support") throw new Error("its card");
 * if (problems.join() !== `pipelines/a.yaml:routes[1].invoke: no agent at ${base}/suport (HTTP 404): is the prompt id right?`) {
 *   throw new Error(problems.join());
 * }
 * ```
 */
import { errorMessage } from "../errors.ts";

/**
 * An agent card, as far as the bridge reads it: 0.3 cards (`protocolVersion`, `url`) and 1.0 cards
 * (`supportedInterfaces`) alike.
 */
export interface AgentCard {
  name: string;
  capabilities?: { streaming?: boolean };
  protocolVersion?: string;
  supportedInterfaces?: { url?: string; protocolBinding?: string; protocolVersion?: string }[];
}

export interface PreflightTarget {
  /** The endpoint calls go to. */
  url: string;
  token?: string;
  /** Where it is configured, for messages (`file:routes[0].invoke`). */
  where: string;
  /** An Archestra prompt (a missing card means an unknown prompt id) or any A2A endpoint (a warning). */
  kind?: "prompt" | "url";
}

export interface PreflightResult {
  /** Reasons not to start, one line each. */
  problems: string[];
  /** Agents that could not be checked. */
  warnings: string[];
  /** The cards found, by endpoint. */
  cards: Map<string, AgentCard>;
}

/** What fetching an agent's card found. */
export type CardCheck = { card: AgentCard } | { refused: number } | { missing: number } | { unreachable: string };

/** Fetches the agent card of the endpoint `target.url` (see the module's notes for where it looks). */
export async function fetchAgentCard(
  target: { url: string; token?: string; kind?: "prompt" | "url" },
  timeoutMs = 10_000,
): Promise<CardCheck> {
  let status = 0;
  const endpoint = target.url.replace(/\/+$/, "");
  const origin = new URL(target.url).origin;
  // Archestra serves a card per prompt under the endpoint; the A2A spec puts it at the origin (for
  // a prompt, a card at the origin would say nothing about whether the prompt exists).
  const places = [`${endpoint}/.well-known/agent.json`, `${endpoint}/.well-known/agent-card.json`];
  if (target.kind === "url" && origin !== endpoint) {
    places.push(`${origin}/.well-known/agent-card.json`, `${origin}/.well-known/agent.json`);
  }
  for (const place of places) {
    let response: Response;
    try {
      response = await fetch(place, {
        headers: { accept: "application/json", ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      return { unreachable: errorMessage(error) };
    }
    status = response.status;
    if (status === 401 || status === 403) {
      await response.body?.cancel();
      return { refused: status };
    }
    if (!response.ok) {
      await response.body?.cancel();
      if (status === 404) continue;
      return { unreachable: `HTTP ${status}` };
    }
    const card = await response.json().catch(() => undefined);
    if (card && typeof card === "object" && typeof card.name === "string") return { card };
  }
  return status === 404 ? { missing: status } : { unreachable: "no agent card where one was looked for" };
}

/** Checks each distinct endpoint once; every route that uses a bad one is named. */
export async function preflight(targets: readonly PreflightTarget[], timeoutMs = 10_000): Promise<PreflightResult> {
  const byUrl = new Map<string, PreflightTarget[]>();
  for (const target of targets) byUrl.set(target.url, [...byUrl.get(target.url) ?? [], target]);
  const result: PreflightResult = { problems: [], warnings: [], cards: new Map() };
  await Promise.all([...byUrl].map(async ([url, users]) => {
    const check = await fetchAgentCard(users[0], timeoutMs);
    for (const { where } of users) {
      if ("card" in check) result.cards.set(url, check.card);
      else if ("refused" in check) {
        result.problems.push(`${where}: the agent at ${url} refused the token (HTTP ${check.refused})`);
      } else if ("missing" in check && users[0].kind !== "url") {
        result.problems.push(`${where}: no agent at ${url} (HTTP 404): is the prompt id right?`);
      } else if ("missing" in check) {
        result.warnings.push(`${where}: no agent card found for ${url} (HTTP 404)`);
      } else result.warnings.push(`${where}: could not fetch the agent card of ${url}: ${check.unreachable}`);
    }
  }));
  result.problems.sort();
  result.warnings.sort();
  return result;
}
