/**
 * A demo A2A agent, built on `@a2a-js/sdk` (A2A 0.3, JSON-RPC), served the way Archestra serves its
 * agents: `POST /v1/a2a/{promptId}`. It answers deterministically, so the demo and the tests know
 * what to expect, and each prompt id can be given a behaviour: slow, failing with an HTTP status a
 * number of times, answering with a JSON-RPC error, or answering with a Task (finished at once, or
 * working until it has been polled).
 *
 * @example
 * ```ts
 * import { startDemoAgent } from "./demo_agent.ts";
 * const agent = startDemoAgent({ port: 0, behaviours: { flaky: { failTimes: 2, failStatus: 503 } } });
 * // POST `${agent.url}/v1/a2a/flaky` answers 503 twice per message id, then replies.
 * await agent.close();
 * ```
 */
import type { AgentCard, Message, Part, Task } from "@a2a-js/sdk";
import {
  type AgentExecutor,
  DefaultRequestHandler,
  type ExecutionEventBus,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  type RequestContext,
} from "@a2a-js/sdk/server";

/** Prompt ids the shipped pipelines use when they run against the demo agent (ARCHESTRA_URL unset). */
export const DEMO_PROMPT_IDS = {
  CUSTOMER_SUPPORT_PROMPT_ID: "customer-support",
  ORDER_PROCESSING_PROMPT_ID: "order-processing",
  ANALYTICS_PROMPT_ID: "analytics",
  /** For the chaining example (pipelines/examples/chaining). */
  ESCALATION_PROMPT_ID: "escalation",
};

/** How the embedded demo agent answers the shipped prompts: support replies carry a severity. */
export const DEMO_BEHAVIOURS: Record<string, Behaviour> = { "customer-support": { classify: true } };

/** How the agent treats calls to one prompt id. */
export interface Behaviour {
  /** Wait this long before answering. */
  latencyMs?: number;
  /** Answer `failStatus` (default 503) this many times per message id before succeeding. */
  failTimes?: number;
  failStatus?: number;
  /** Seconds to send in `Retry-After` with those failures. */
  retryAfter?: number;
  /** Echo the request's `Authorization` header in those failures' bodies (a careless agent). */
  echoAuthorization?: boolean;
  /** Answer every call with this JSON-RPC error. */
  rpcError?: { code: number; message: string };
  /** Answer with a Task: `completed` at once, or `working` until polled `polls` times (default 2). */
  task?: "completed" | "working";
  polls?: number;
  /** The state a `working` task ends in (default `completed`). */
  finalState?: "completed" | "failed" | "input-required" | "auth-required";
  /**
   * Offer `message/stream` (the card says `streaming: true`): a call streams the task working, its
   * artifact, then its completion, as server-sent events.
   */
  stream?: boolean;
  /** Add a data part `{ severity }` to each reply: `critical` when the text speaks of money or outages. */
  classify?: boolean;
  /** Hold every answer until this settles: lets a test act while a call is in flight. */
  gate?: Promise<unknown>;
  /** Answer with this as the JSON-RPC `result`, whatever it is (a broken agent). */
  rawResult?: unknown;
  /** Send the headers and the start of a body, then nothing more (a stalled agent). */
  stallBody?: boolean;
}

/** One request the agent received, for tests to inspect. */
export interface ReceivedRequest {
  promptId: string;
  method: string;
  authorization: string | null;
  /** The W3C trace context the caller sent, if any. */
  traceparent: string | null;
  /** For `tasks/get`: the task asked about. */
  taskId?: string;
  message?: Message;
  at: number;
}

export interface DemoAgentOptions {
  port?: number;
  hostname?: string;
  /** Latency for prompt ids without a behaviour of their own. */
  latencyMs?: number;
  behaviours?: Record<string, Behaviour>;
  /** When set, calls without `Authorization: Bearer <token>` get HTTP 401. */
  token?: string;
  /** Keep the last this many requests (default 10,000). */
  keep?: number;
  /** The prompt ids it knows; others get HTTP 404, as Archestra answers an unknown prompt. Default: any. */
  prompts?: readonly string[];
}

export interface DemoAgent {
  /** Base URL, e.g. `http://127.0.0.1:43117`: use it as `ARCHESTRA_URL`. */
  readonly url: string;
  readonly port: number;
  readonly requests: ReceivedRequest[];
  /** Resolves once `count` requests in all have arrived. */
  waitForRequests(count: number): Promise<void>;
  /** The most calls to `promptId` it was answering at once. */
  peakInFlight(promptId: string): number;
  /** Changes the behaviour of a prompt id from now on. */
  setBehaviour(promptId: string, behaviour: Behaviour | undefined): void;
  close(): Promise<void>;
}

/** The deterministic reply text for a request text sent to a prompt id. */
/** How the demo agent classifies a text, for `classify`: deterministic keywords, no model. */
export function demoSeverity(text: string): "critical" | "normal" {
  return /charged|refund|outage|down|security|breach/i.test(text) ? "critical" : "normal";
}

export function demoReply(promptId: string, text: string): string {
  const firstLine = text.split("\n").find((line) => line.trim()) ?? "";
  return `Demo agent [${promptId}] received ${text.length} characters. First line: ${firstLine.slice(0, 120)}`;
}

function card(url: string, streaming = false): AgentCard {
  return {
    name: "agentstream demo agent",
    description: "Answers deterministically; used by the agentstream demo and tests.",
    url,
    version: "1.0.0",
    protocolVersion: "0.3.0",
    preferredTransport: "JSONRPC",
    capabilities: { streaming, pushNotifications: false },
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [{ id: "echo", name: "Echo", description: "Summarises what it received.", tags: ["demo"] }],
  };
}

function textOf(message: Message): string {
  return message.parts.flatMap((part) => part.kind === "text" ? [part.text] : []).join("\n");
}

function executor(promptId: string, behaviour: () => Behaviour): AgentExecutor {
  return {
    execute(request: RequestContext, bus: ExecutionEventBus): Promise<void> {
      const text = textOf(request.userMessage);
      const parts: Part[] = [{ kind: "text", text: demoReply(promptId, text) }];
      if (behaviour().classify) parts.push({ kind: "data", data: { severity: demoSeverity(text) } });
      const { taskId, contextId } = request;
      const now = () => new Date().toISOString();
      if (behaviour().stream) {
        bus.publish({ kind: "task", id: taskId, contextId, status: { state: "working", timestamp: now() } });
        bus.publish({
          kind: "artifact-update",
          taskId,
          contextId,
          artifact: { artifactId: crypto.randomUUID(), name: "reply", parts },
          lastChunk: true,
        });
        bus.publish({
          kind: "status-update",
          taskId,
          contextId,
          status: { state: "completed", timestamp: now() },
          final: true,
        });
      } else if (behaviour().task === "completed") {
        const task: Task = {
          kind: "task",
          id: request.taskId,
          contextId: request.contextId,
          status: { state: "completed", timestamp: new Date().toISOString() },
          artifacts: [{ artifactId: crypto.randomUUID(), name: "reply", parts }],
          history: [request.userMessage],
        };
        bus.publish(task);
      } else {
        bus.publish({
          kind: "message",
          role: "agent",
          messageId: crypto.randomUUID(),
          contextId: request.contextId,
          parts,
        });
      }
      bus.finished();
      return Promise.resolve();
    },
    cancelTask: () => Promise.resolve(),
  };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

/** Starts the agent on `hostname:port` (port 0: any free port). */
export function startDemoAgent(options: DemoAgentOptions = {}): DemoAgent {
  const behaviours = new Map(Object.entries(options.behaviours ?? {}));
  const behaviourOf = (promptId: string): Behaviour => behaviours.get(promptId) ?? { latencyMs: options.latencyMs };
  const handlers = new Map<string, JsonRpcTransportHandler>();
  const failures = new Map<string, number>();
  const workingTasks = new Map<string, { task: Task; polls: number }>();
  const requests: ReceivedRequest[] = [];
  const keep = options.keep ?? 10_000;
  let received = 0;
  const waiters: { count: number; resolve: () => void }[] = [];
  const inFlight = new Map<string, number>();
  const peaks = new Map<string, number>();
  let baseUrl = "";

  const handlerFor = (promptId: string) => {
    let handler = handlers.get(promptId);
    if (!handler) {
      const requestHandler = new DefaultRequestHandler(
        card(`${baseUrl}/v1/a2a/${promptId}`, behaviourOf(promptId).stream),
        new InMemoryTaskStore(),
        executor(promptId, () => behaviourOf(promptId)),
      );
      handlers.set(promptId, handler = new JsonRpcTransportHandler(requestHandler));
    }
    return handler;
  };

  const serve = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (request.method === "GET" && /^\/\.well-known\/agent(-card)?\.json$/.test(url.pathname)) {
      return json(card(baseUrl));
    }
    if (request.method === "GET" && url.pathname === "/health") return json({ status: "ok" });
    // Each prompt's own card, as Archestra serves it, and the newer well-known name.
    const cardOf = /^\/v1\/a2a\/([^/]+)\/\.well-known\/agent(-card)?\.json$/.exec(url.pathname);
    if (request.method === "GET" && cardOf) {
      const promptId = decodeURIComponent(cardOf[1]);
      if (options.token && request.headers.get("authorization") !== `Bearer ${options.token}`) {
        return json({ error: "unauthorized" }, 401);
      }
      if (options.prompts && !options.prompts.includes(promptId)) return json({ error: "unknown prompt" }, 404);
      return json(card(`${baseUrl}/v1/a2a/${promptId}`, behaviourOf(promptId).stream));
    }
    const route = /^\/v1\/a2a\/([^/]+)\/?$/.exec(url.pathname);
    if (request.method !== "POST" || !route) return json({ error: "not found" }, 404);
    const promptId = decodeURIComponent(route[1]);
    if (options.prompts && !options.prompts.includes(promptId)) return json({ error: "unknown prompt" }, 404);
    const authorization = request.headers.get("authorization");
    let body: { id?: unknown; method?: string; params?: { message?: Message; id?: string } };
    try {
      body = await request.json();
    } catch {
      return json({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
    }
    requests.push({
      promptId,
      method: body.method ?? "",
      authorization,
      traceparent: request.headers.get("traceparent"),
      taskId: body.params?.id,
      message: body.params?.message,
      at: Date.now(),
    });
    if (requests.length > keep) requests.splice(0, requests.length - keep);
    received++;
    for (const waiter of waiters.filter((w) => w.count <= received)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    if (options.token && authorization !== `Bearer ${options.token}`) return json({ error: "unauthorized" }, 401);

    // Counted while answering, to show how many calls a caller keeps in flight.
    const now = (inFlight.get(promptId) ?? 0) + 1;
    inFlight.set(promptId, now);
    peaks.set(promptId, Math.max(peaks.get(promptId) ?? 0, now));
    try {
      return await answer(body, promptId, authorization);
    } finally {
      inFlight.set(promptId, inFlight.get(promptId)! - 1);
    }
  };

  const answer = async (
    body: { id?: unknown; method?: string; params?: { message?: Message; id?: string } },
    promptId: string,
    authorization: string | null,
  ): Promise<Response> => {
    const behaviour = behaviourOf(promptId);
    if (behaviour.latencyMs) await new Promise((resolve) => setTimeout(resolve, behaviour.latencyMs));
    if (behaviour.gate) await behaviour.gate;
    const messageId = body.params?.message?.messageId ?? "";
    if (behaviour.failTimes && body.method === "message/send") {
      const seen = failures.get(messageId) ?? 0;
      if (seen < behaviour.failTimes) {
        failures.set(messageId, seen + 1);
        const headers: Record<string, string> = behaviour.retryAfter === undefined
          ? {}
          : { "retry-after": String(behaviour.retryAfter) };
        const error = behaviour.echoAuthorization
          ? `refused (Authorization: ${authorization})`
          : "temporarily unavailable";
        return json({ error }, behaviour.failStatus ?? 503, headers);
      }
    }
    if (behaviour.rpcError) return json({ jsonrpc: "2.0", id: body.id ?? null, error: behaviour.rpcError });
    if ("rawResult" in behaviour) return json({ jsonrpc: "2.0", id: body.id ?? null, result: behaviour.rawResult });
    if (behaviour.stallBody) {
      const stream = new ReadableStream({ start: (controller) => controller.enqueue(new TextEncoder().encode("{")) });
      return new Response(stream, { headers: { "content-type": "application/json" } });
    }
    if (behaviour.task === "working") return workingTask(body, promptId, behaviour);
    const result = await handlerFor(promptId).handle(body);
    if (Symbol.asyncIterator in result) {
      // message/stream: each event as a server-sent event holding a JSON-RPC response.
      const encoder = new TextEncoder();
      const events = ReadableStream.from(result).pipeThrough(
        new TransformStream({
          transform: (event, controller) => controller.enqueue(encoder.encode(`data: ${JSON.stringify(event)}\n\n`)),
        }),
      );
      return new Response(events, { headers: { "content-type": "text/event-stream" } });
    }
    return json(result);
  };

  // A Task that stays `working` until it has been polled `polls` times: exercises tasks/get.
  const workingTask = (
    body: { id?: unknown; method?: string; params?: { message?: Message; id?: string } },
    promptId: string,
    behaviour: Behaviour,
  ): Response => {
    if (body.method === "message/send" && body.params?.message) {
      const message = body.params.message;
      const task: Task = {
        kind: "task",
        id: crypto.randomUUID(),
        contextId: message.contextId ?? crypto.randomUUID(),
        status: { state: "working", timestamp: new Date().toISOString() },
        artifacts: [{
          artifactId: crypto.randomUUID(),
          parts: [{ kind: "text", text: demoReply(promptId, textOf(message)) }],
        }],
      };
      workingTasks.set(task.id, { task, polls: 0 });
      return json({ jsonrpc: "2.0", id: body.id, result: { ...task, artifacts: [] } });
    }
    const entry = workingTasks.get(body.params?.id ?? "");
    if (body.method !== "tasks/get" || !entry) {
      return json({ jsonrpc: "2.0", id: body.id ?? null, error: { code: -32001, message: "task not found" } });
    }
    entry.polls++;
    const finished = entry.polls >= (behaviour.polls ?? 2);
    const state = behaviour.finalState ?? "completed";
    const task: Task = finished
      ? {
        ...entry.task,
        ...(state === "completed" ? {} : { artifacts: [] }),
        status: { state, timestamp: new Date().toISOString() },
      }
      : { ...entry.task, artifacts: [] };
    return json({ jsonrpc: "2.0", id: body.id, result: task });
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
    requests,
    waitForRequests: (count) =>
      count <= received ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve })),
    peakInFlight: (promptId) => peaks.get(promptId) ?? 0,
    setBehaviour: (promptId, behaviour) => {
      if (behaviour) behaviours.set(promptId, behaviour);
      else behaviours.delete(promptId);
    },
    close: () => server.shutdown(),
  };
}
