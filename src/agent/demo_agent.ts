/**
 * A demo A2A agent in the flavours real agents come in, served at `/v1/a2a/{promptId}` and
 * `/v2/a2a/{promptId}` the way Archestra serves its agents:
 *
 * - `archestra-v1` (the default, and the embedded default of `deno task start`): `/v1` answers as
 *   Archestra's legacy endpoint does (bare Message with no `kind`, errors at HTTP 200, card behind
 *   the token, no tasks; see `archestra_v1.ts`), and `/v2` speaks A2A 1.0 as Archestra's does:
 *   errors at HTTP 200 in its words, a message id it answered refused, only contexts it minted
 *   accepted (see `archestra_v2.ts`).
 * - `a2a-1.0`: a strict `@a2a-js/sdk` 1.x server on both paths (see `sdk_agent.ts`).
 * - `a2a-0.3`: the same SDK's 0.3 compatibility layer on both paths.
 *
 * It answers deterministically ({@link demoReply}), and each prompt id can be given a behaviour:
 * slow, failing with an HTTP status or with `-32603` a number of times, refusing the token while a
 * file exists, answering with a task (where the protocol has them) or a stream, serving a limited
 * number of calls at once (refusing the rest as a rate limit, or queueing them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startDemoAgent } from "./demo_agent.ts";
 * const agent = startDemoAgent({ port: 0, behaviours: { flaky: { rpcFailTimes: 1 } } });
 * const call = () =>
 *   fetch(`${agent.url}/v1/a2a/flaky`, {
 *     method: "POST",
 *     body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "message/send", params: { message: { messageId: "m", parts: [{ kind: "text", text: "hi" }] } } }),
 *   }).then((response) => response.json());
 * assert.equal((await call()).error.code, -32603); // the first call fails as an LLM rate limit would
 * assert.equal((await call()).result.role, "agent");
 * await agent.close();
 * ```
 *
 * @module
 */
import { archestraError, archestraV1Card, archestraV1Reply } from "./archestra_v1.ts";
import type { Behaviour } from "./behaviour.ts";
export type { Behaviour } from "./behaviour.ts";
import { ArchestraV2, archestraV2Refusal, archestraV2RunFailed, archestraV2UnknownAgent } from "./archestra_v2.ts";
import { SdkAgent, sdkCardJson } from "./sdk_agent.ts";
export { demoReply, demoSeverity, demoTrends } from "./demo_reply.ts";

/** Prompt ids the shipped pipelines use when they run against the demo agent (ARCHESTRA_URL unset). */
export const DEMO_PROMPT_IDS = {
  CUSTOMER_SUPPORT_PROMPT_ID: "customer-support",
  ORDER_PROCESSING_PROMPT_ID: "order-processing",
  ANALYTICS_PROMPT_ID: "analytics",
  /** For the chaining example (pipelines/examples/chaining). */
  ESCALATION_PROMPT_ID: "escalation",
  /** For the windows example (pipelines/examples/windows). */
  TRENDS_PROMPT_ID: "trends",
  /** For the approvals example (pipelines/examples/approvals): asks before its refund tool runs. */
  REFUNDS_PROMPT_ID: "refunds",
  /** For the Avro example (pipelines/examples/avro). */
  PAYMENTS_PROMPT_ID: "payments",
};

/**
 * How the embedded demo agent answers the shipped prompts: support replies carry a severity, and
 * the trends agent sums up the readings of a window.
 */
export const DEMO_BEHAVIOURS: Record<string, Behaviour> = {
  "customer-support": { classify: true },
  trends: { trends: true },
  refunds: { asks: 1 },
};

/** The kinds of agent the demo agent can be. */
export type Flavour = "archestra-v1" | "a2a-1.0" | "a2a-0.3";
export const FLAVOURS: readonly Flavour[] = ["archestra-v1", "a2a-1.0", "a2a-0.3"];

/** What a call asked for, whatever the protocol's method names. */
export type Operation = "send" | "stream" | "get" | "cancel" | "other";

/** One request the agent received, for tests to inspect. */
export interface ReceivedRequest {
  promptId: string;
  /** The JSON-RPC method as sent. */
  method: string;
  /** What it asked for: `message/send` and `SendMessage` are both `send` (Archestra's `/v1`: always). */
  op: Operation;
  /** `/v1` or `/v2`. */
  api: "v1" | "v2";
  authorization: string | null;
  /** The `A2A-Version` header, if any. */
  a2aVersion: string | null;
  /** The W3C trace context the caller sent, if any. */
  traceparent: string | null;
  /** For task queries and cancels: the task asked about. */
  taskId?: string;
  /** The message as sent (0.3 or 1.0 shape). */
  message?: SentMessage;
  /** The message's text parts, one per line. */
  text: string;
  at: number;
}

/** A message as a caller sent it, in either version's shape. */
export interface SentMessage {
  kind?: string;
  role?: string;
  messageId?: string;
  contextId?: string;
  taskId?: string;
  parts: { kind?: string; text?: string }[];
  metadata?: Record<string, unknown>;
}

export interface DemoAgentOptions {
  port?: number;
  hostname?: string;
  /** Which kind of agent to be (default `archestra-v1`). */
  flavour?: Flavour;
  /** Latency for prompt ids without a behaviour of their own. */
  latencyMs?: number;
  behaviours?: Record<string, Behaviour>;
  /** When set, calls without `Authorization: Bearer <token>` are refused. */
  token?: string;
  /** Keep the last this many requests (default 10,000). */
  keep?: number;
  /** The prompt ids it knows; others are unknown agents. Default: any. */
  prompts?: readonly string[];
}

export interface DemoAgent {
  /** Base URL, e.g. `http://127.0.0.1:43117`: use it as `ARCHESTRA_URL`. */
  readonly url: string;
  readonly port: number;
  readonly flavour: Flavour;
  readonly requests: ReceivedRequest[];
  /** Resolves once `count` requests in all have arrived. */
  waitForRequests(count: number): Promise<void>;
  /** The most calls to `promptId` it was answering at once. */
  peakInFlight(promptId: string): number;
  /** Calls to `promptId` refused for its `capacity`. */
  overCapacity(promptId: string): number;
  /** Changes the behaviour of a prompt id from now on. */
  setBehaviour(promptId: string, behaviour: Behaviour | undefined): void;
  close(): Promise<void>;
}

/** `archestra`: Archestra's `/v1`; `archestra-v2`: its `/v2` (A2A 1.0 with Archestra's errors and ids). */
type Protocol = "archestra" | "archestra-v2" | "1.0" | "0.3";
interface RpcBody {
  id?: unknown;
  method?: unknown;
  params?: { message?: SentMessage; id?: string };
}

const OPERATIONS: Record<string, Operation> = {
  "message/send": "send",
  SendMessage: "send",
  "message/stream": "stream",
  SendStreamingMessage: "stream",
  "tasks/get": "get",
  GetTask: "get",
  "tasks/cancel": "cancel",
  CancelTask: "cancel",
};

/** What a path speaks: Archestra's `/v1` and `/v2` are its own; every SDK flavour's paths are plain A2A. */
function protocolOf(flavour: Flavour, api: "v1" | "v2"): Protocol {
  if (flavour === "archestra-v1") return api === "v1" ? "archestra" : "archestra-v2";
  return flavour === "a2a-1.0" ? "1.0" : "0.3";
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A provider's rate limit as the protocol passes it on: Archestra's `-32603`, with `data.reason` on `/v2`. */
function providerRateLimit(protocol: Protocol, id: unknown) {
  const reason = "LLM provider error: 429 rate limit exceeded, retry later";
  return protocol === "archestra-v2" ? archestraV2RunFailed(id, reason) : archestraError(id, -32603, reason);
}

/** Starts the agent on `hostname:port` (port 0: any free port). */
export function startDemoAgent(options: DemoAgentOptions = {}): DemoAgent {
  const flavour = options.flavour ?? "archestra-v1";
  const behaviours = new Map(Object.entries(options.behaviours ?? {}));
  const behaviourOf = (promptId: string): Behaviour => behaviours.get(promptId) ?? { latencyMs: options.latencyMs };
  const sdkAgents = new Map<string, SdkAgent>();
  const v2Agents = new Map<string, ArchestraV2>();
  const v2Agent = (promptId: string) => {
    let agent = v2Agents.get(promptId);
    if (!agent) v2Agents.set(promptId, agent = new ArchestraV2());
    return agent;
  };
  const failures = new Map<string, number>();
  const requests: ReceivedRequest[] = [];
  const keep = options.keep ?? 10_000;
  let received = 0;
  const waiters: { count: number; resolve: () => void }[] = [];
  const inFlight = new Map<string, number>();
  const peaks = new Map<string, number>();
  const refusedForCapacity = new Map<string, number>();
  /** Per prompt id with `workers`: calls being served, and the starters of those waiting. */
  const pools = new Map<string, { busy: number; waiting: (() => void)[] }>();
  const worker = async (promptId: string, workers: number): Promise<() => void> => {
    let pool = pools.get(promptId);
    if (!pool) pools.set(promptId, pool = { busy: 0, waiting: [] });
    if (pool.busy >= workers) await new Promise<void>((resolve) => pool!.waiting.push(resolve));
    else pool.busy++;
    return () => {
      const next = pool!.waiting.shift();
      if (next) next(); // the slot passes straight on
      else pool!.busy--;
    };
  };
  let baseUrl = "";
  const endpoint = (api: string, promptId: string) => `${baseUrl}/${api}/a2a/${encodeURIComponent(promptId)}`;

  const sdkAgent = (protocol: "1.0" | "0.3", api: "v1" | "v2", promptId: string) => {
    const id = `${protocol} ${api} ${promptId}`;
    let agent = sdkAgents.get(id);
    if (!agent) {
      sdkAgents.set(
        id,
        agent = new SdkAgent(protocol, promptId, endpoint(api, promptId), () => behaviourOf(promptId)),
      );
    }
    return agent;
  };
  const known = (promptId: string) => !options.prompts || options.prompts.includes(promptId);
  /** Why a call's credentials are refused, or undefined when they are accepted. */
  const refusal = (promptId: string, authorization: string | null): string | undefined => {
    const refuseWhile = behaviourOf(promptId).refuseWhile;
    if (refuseWhile && exists(refuseWhile)) return "Invalid or unauthorized token";
    if (!options.token) return undefined;
    if (!authorization) return "Authorization header required. Use: Bearer <token>";
    return authorization === `Bearer ${options.token}` ? undefined : "Invalid or unauthorized token";
  };

  const cardOf = (request: Request, api: "v1" | "v2", promptId: string, file: string): Response => {
    const protocol = protocolOf(flavour, api);
    const refused = refusal(promptId, request.headers.get("authorization"));
    if (refused) return json({ error: { message: refused, type: "api_authentication_error" } }, 401);
    if (!known(promptId)) return json({ error: { message: "Agent not found", type: "api_not_found_error" } }, 404);
    if (protocol === "archestra") {
      return file === "agent.json" ? json(archestraV1Card(endpoint(api, promptId))) : json({ error: "not found" }, 404);
    }
    const sdk = protocol === "archestra-v2" ? "1.0" : protocol;
    return json(sdkCardJson(sdk, endpoint(api, promptId), behaviourOf(promptId).stream === true));
  };

  const record = (request: Request, api: "v1" | "v2", promptId: string, protocol: Protocol, body: RpcBody) => {
    const method = typeof body.method === "string" ? body.method : "";
    const message = body.params?.message;
    requests.push({
      promptId,
      method,
      op: protocol === "archestra" ? "send" : OPERATIONS[method] ?? "other",
      api,
      authorization: request.headers.get("authorization"),
      a2aVersion: request.headers.get("a2a-version"),
      traceparent: request.headers.get("traceparent"),
      taskId: body.params?.id,
      message,
      text: (Array.isArray(message?.parts) ? message.parts : []).flatMap((part) =>
        typeof part?.text === "string" ? [part.text] : []
      ).join("\n"),
      at: Date.now(),
    });
    if (requests.length > keep) requests.splice(0, requests.length - keep);
    received++;
    for (const waiter of waiters.filter((w) => w.count <= received)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    return requests[requests.length - 1];
  };

  const serve = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (request.method === "GET" && /^\/\.well-known\/agent(-card)?\.json$/.test(url.pathname)) {
      return json(
        flavour === "archestra-v1"
          ? archestraV1Card(baseUrl)
          : sdkCardJson(flavour === "a2a-1.0" ? "1.0" : "0.3", baseUrl, false),
      );
    }
    if (request.method === "GET" && url.pathname === "/health") return json({ status: "ok" });
    // For benchmarks that run the agent as a process of its own: what it saw, per prompt id.
    if (request.method === "GET" && url.pathname === "/stats") {
      return json({
        received,
        peakInFlight: Object.fromEntries(peaks),
        overCapacity: Object.fromEntries(refusedForCapacity),
      });
    }
    const card = /^\/(v1|v2)\/a2a\/([^/]+)\/\.well-known\/(agent(?:-card)?\.json)$/.exec(url.pathname);
    if (request.method === "GET" && card) {
      return cardOf(request, card[1] as "v1" | "v2", decodeURIComponent(card[2]), card[3]);
    }
    const route = /^\/(v1|v2)\/a2a\/([^/]+)\/?$/.exec(url.pathname);
    if (request.method !== "POST" || !route) return json({ error: "not found" }, 404);
    const api = route[1] as "v1" | "v2";
    const promptId = decodeURIComponent(route[2]);
    const protocol = protocolOf(flavour, api);
    let body: RpcBody;
    try {
      body = await request.json();
      if (body === null || typeof body !== "object") throw new TypeError("not an object");
    } catch {
      return json({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
    }
    const incoming = record(request, api, promptId, protocol, body);
    // Archestra answers a refused token and an unknown agent at HTTP 200; A2A servers with a status.
    const refused = refusal(promptId, incoming.authorization);
    if (refused) {
      if (protocol === "archestra-v2") return json(archestraV2Refusal(body.id, incoming.authorization));
      return protocol === "archestra" ? json(archestraError(body.id, -32600, refused)) : json({ error: refused }, 401);
    }
    if (!known(promptId)) {
      if (protocol === "archestra-v2") return json(archestraV2UnknownAgent(body.id));
      return protocol === "archestra"
        ? json(archestraError(body.id, -32602, "Agent not found"))
        : json({ error: "unknown agent" }, 404);
    }
    const v2Refusal = protocol === "archestra-v2" ? v2Agent(promptId).refuse(body) : undefined;
    if (v2Refusal) return json(v2Refusal);
    // Counted while answering, to show how many calls a caller keeps in flight.
    const now = (inFlight.get(promptId) ?? 0) + 1;
    const { capacity, workers } = behaviourOf(promptId);
    if (capacity !== undefined && now > capacity) {
      refusedForCapacity.set(promptId, (refusedForCapacity.get(promptId) ?? 0) + 1);
      return json(providerRateLimit(protocol, body.id));
    }
    inFlight.set(promptId, now);
    peaks.set(promptId, Math.max(peaks.get(promptId) ?? 0, now));
    const done = workers === undefined ? undefined : await worker(promptId, workers);
    try {
      return await answer(request, body, incoming, protocol, api);
    } finally {
      done?.();
      inFlight.set(promptId, inFlight.get(promptId)! - 1);
    }
  };

  /** Counts one more failure of a message id for a kind of failure; true while it should still fail. */
  const failsAgain = (kind: string, messageId: string, times: number | undefined) => {
    if (!times) return false;
    const id = `${kind}\u0000${messageId}`;
    const seen = failures.get(id) ?? 0;
    if (seen >= times) return false;
    failures.set(id, seen + 1);
    return true;
  };

  const answer = async (
    request: Request,
    body: RpcBody,
    received: ReceivedRequest,
    protocol: Protocol,
    api: "v1" | "v2",
  ): Promise<Response> => {
    const { promptId } = received;
    const behaviour = behaviourOf(promptId);
    if (behaviour.latencyMs) await new Promise((resolve) => setTimeout(resolve, behaviour.latencyMs));
    if (behaviour.gate) await behaviour.gate;
    const sending = received.op === "send" || received.op === "stream";
    const messageId = body.params?.message?.messageId ?? "";
    if (sending && failsAgain("status", messageId, behaviour.failTimes)) {
      const headers: Record<string, string> = behaviour.retryAfter === undefined
        ? {}
        : { "retry-after": String(behaviour.retryAfter) };
      const error = behaviour.echoAuthorization
        ? `refused (Authorization: ${received.authorization})`
        : "temporarily unavailable";
      return json({ error }, behaviour.failStatus ?? 503, headers);
    }
    if (sending && failsAgain("rpc", messageId, behaviour.rpcFailTimes)) {
      return json(providerRateLimit(protocol, body.id));
    }
    if (behaviour.rpcError) return json(archestraError(body.id, behaviour.rpcError.code, behaviour.rpcError.message));
    if ("rawResult" in behaviour) return json({ jsonrpc: "2.0", id: body.id ?? null, result: behaviour.rawResult });
    if (behaviour.stallBody) {
      const stream = new ReadableStream({ start: (controller) => controller.enqueue(new TextEncoder().encode("{")) });
      return new Response(stream, { headers: { "content-type": "application/json" } });
    }
    if (protocol === "archestra") return json(archestraV1Reply(body, promptId, behaviour));
    const version = request.headers.get("a2a-version") ?? undefined;
    if (protocol !== "archestra-v2") return await sdkAgent(protocol, api, promptId).handle(body, version);
    const v2 = v2Agent(promptId);
    const response = await sdkAgent("1.0", api, promptId).handle(v2.incoming(body), version);
    if (!(response.headers.get("content-type") ?? "").startsWith("application/json")) return response;
    const reply = v2.outgoing(await response.json());
    v2.answered(body, reply);
    return json(reply);
  };

  const server = Deno.serve({
    port: options.port ?? 0,
    hostname: options.hostname ?? "127.0.0.1",
    onListen: () => {},
  }, serve);
  const port = server.addr.port;
  baseUrl = `http://${options.hostname === "0.0.0.0" ? "127.0.0.1" : options.hostname ?? "127.0.0.1"}:${port}`;
  return {
    url: baseUrl,
    port,
    flavour,
    requests,
    waitForRequests: (count) =>
      count <= received ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve })),
    peakInFlight: (promptId) => peaks.get(promptId) ?? 0,
    overCapacity: (promptId) => refusedForCapacity.get(promptId) ?? 0,
    setBehaviour: (promptId, behaviour) => {
      if (behaviour) behaviours.set(promptId, behaviour);
      else behaviours.delete(promptId);
    },
    close: () => server.shutdown(),
  };
}
