/**
 * The demo agent's `@a2a-js/sdk` 1.x flavours: one SDK request handler per prompt id, served over
 * JSON-RPC as A2A 1.0 (strict: a call without `A2A-Version: 1.0` is refused with `-32009`, as the
 * SDK's own transport refuses it) or through the SDK's 0.3 compatibility layer. The executor answers
 * deterministically with {@link demoReply}: a Message, or a Task that works for a while, can be
 * cancelled, and ends in the state its behaviour names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SdkAgent } from "./sdk_agent.ts";
 * const agent = new SdkAgent("1.0", "echo", "http://127.0.0.1:9/v1/a2a/echo", () => ({}));
 * const response = await agent.handle(
 *   { jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: { messageId: "m", role: "ROLE_USER", parts: [{ text: "hi" }] } } },
 *   "1.0",
 * );
 * const body = await response.json();
 * assert.equal(body.result.message.role, "ROLE_AGENT");
 * ```
 *
 * @module
 */
import {
  AgentCard,
  formatSSEErrorEvent,
  formatSSEEvent,
  type Message,
  type Part,
  Role,
  SSE_HEADERS,
  TaskState,
} from "@a2a-js/sdk";
import {
  AgentEvent,
  type AgentExecutor,
  DefaultRequestHandler,
  type ExecutionEventBus,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  type RequestContext,
  ServerCallContext,
  UnauthenticatedUser,
  validateVersion,
} from "@a2a-js/sdk/server";
import { LegacyJsonRpcTransportHandler } from "@a2a-js/sdk/compat/v0_3/server";
import type { Behaviour } from "./behaviour.ts";
import { demoAnswer } from "./demo_reply.ts";

/** The A2A versions the SDK flavours speak. */
export type SdkVersion = "0.3" | "1.0";

const textPart = (text: string): Part => ({
  content: { $case: "text", value: text },
  metadata: undefined,
  filename: "",
  mediaType: "text/plain",
});
const dataPart = (value: unknown): Part => ({
  content: { $case: "data", value },
  metadata: undefined,
  filename: "",
  mediaType: "application/json",
});
const agentMessage = (parts: Part[], contextId: string, taskId = ""): Message => ({
  messageId: crypto.randomUUID(),
  contextId,
  taskId,
  role: Role.ROLE_AGENT,
  parts,
  metadata: undefined,
  extensions: [],
  referenceTaskIds: [],
});
const now = () => new Date().toISOString();

const FINAL_STATES = {
  completed: TaskState.TASK_STATE_COMPLETED,
  failed: TaskState.TASK_STATE_FAILED,
  "input-required": TaskState.TASK_STATE_INPUT_REQUIRED,
  "auth-required": TaskState.TASK_STATE_AUTH_REQUIRED,
} as const;

/** The card an SDK flavour serves for one endpoint (1.x shape; 0.3 peers also get `url`/`protocolVersion`). */
export function sdkCard(version: SdkVersion, url: string, streaming: boolean): AgentCard {
  return {
    name: "agentstream demo agent",
    description: "Answers deterministically; used by the agentstream demo and tests.",
    version: "1.0.0",
    supportedInterfaces: [{ url, protocolBinding: "JSONRPC", tenant: "", protocolVersion: version }],
    provider: undefined,
    capabilities: { streaming, pushNotifications: false, extensions: [], extendedAgentCard: false },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [{
      id: "echo",
      name: "Echo",
      description: "Summarises what it received.",
      tags: ["demo"],
      examples: [],
      inputModes: [],
      outputModes: [],
      securityRequirements: [],
    }],
    signatures: [],
  };
}

/** The card as JSON, the way each version's peers read it. */
export function sdkCardJson(version: SdkVersion, url: string, streaming: boolean): unknown {
  const json = AgentCard.toJSON(sdkCard(version, url, streaming)) as Record<string, unknown>;
  return version === "0.3" ? { ...json, url, protocolVersion: "0.3.0", preferredTransport: "JSONRPC" } : json;
}

/** An SDK agent for one prompt id. */
export class SdkAgent {
  readonly #handler: DefaultRequestHandler;
  readonly #transport: JsonRpcTransportHandler | LegacyJsonRpcTransportHandler;
  readonly #version: SdkVersion;

  constructor(version: SdkVersion, promptId: string, url: string, behaviour: () => Behaviour) {
    this.#version = version;
    this.#handler = new DefaultRequestHandler(
      sdkCard(version, url, behaviour().stream === true),
      new InMemoryTaskStore(),
      executor(promptId, behaviour),
    );
    this.#transport = version === "1.0"
      ? new JsonRpcTransportHandler(this.#handler)
      : new LegacyJsonRpcTransportHandler(this.#handler);
  }

  /** Answers one JSON-RPC body; `requestedVersion` is the call's `A2A-Version` header. */
  async handle(body: unknown, requestedVersion: string | undefined): Promise<Response> {
    const mapError = this.#version === "1.0"
      ? JsonRpcTransportHandler.mapToJSONRPCError
      : LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError;
    const id = (body as { id?: unknown } | null)?.id ?? null;
    const failed = (error: unknown) => ({ jsonrpc: "2.0", id, error: mapError(error) });
    const context = new ServerCallContext({
      requestedVersion: requestedVersion ?? (this.#version === "0.3" ? "0.3" : undefined),
      user: new UnauthenticatedUser(),
    });
    try {
      if (this.#version === "1.0") {
        validateVersion(context.requestedVersion, await this.#handler.getAgentCard(), "JSONRPC");
      }
      // deno-lint-ignore no-explicit-any
      const out = await this.#transport.handle(body as any, context);
      if (!(out && Symbol.asyncIterator in out)) return Response.json(out);
      const events = out as AsyncGenerator<unknown>;
      const encoder = new TextEncoder();
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            try {
              const next = await events.next();
              if (next.done) controller.close();
              else controller.enqueue(encoder.encode(formatSSEEvent(next.value)));
            } catch (error) {
              controller.enqueue(encoder.encode(formatSSEErrorEvent(failed(error))));
              controller.close();
            }
          },
          async cancel() {
            await events.return(undefined);
          },
        }),
        { headers: SSE_HEADERS },
      );
    } catch (error) {
      return Response.json(failed(error));
    }
  }
}

/** The question the demo agent asks with `asks` (Archestra's `/v2` flavour turns it into a tool approval). */
export function demoQuestion(asked: number, asks: number): string {
  return `May I run the refund tool? (question ${asked} of ${asks})`;
}

/** The demo agent's reply once its last question is answered: `denied` stops the refund. */
export function demoAnswered(promptId: string, answer: string): string {
  return /^denied\b/i.test(answer.trim())
    ? `Demo agent [${promptId}]: the refund tool was denied, so no refund was made.`
    : `Demo agent [${promptId}] ran the refund tool after the answer: ${answer.trim().slice(0, 120)}`;
}

/** A task's status now, and a way to publish its next one. */
function taskEvents(request: RequestContext, bus: ExecutionEventBus) {
  const { taskId, contextId } = request;
  const status = (state: TaskState, message?: Message) => ({ state, message, timestamp: now() });
  const update = (state: TaskState, message?: Message) =>
    bus.publish(AgentEvent.statusUpdate({ taskId, contextId, status: status(state, message), metadata: undefined }));
  return { status, update };
}

/** The task a message starts, just submitted. */
function submitted(request: RequestContext) {
  return {
    id: request.taskId,
    contextId: request.contextId,
    status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: now() },
    artifacts: [],
    history: [request.userMessage],
    metadata: undefined,
  };
}

/** A task's answer, as its one artifact `reply`, in one chunk. */
function publishReply(bus: ExecutionEventBus, taskId: string, contextId: string, parts: Part[]): void {
  bus.publish(AgentEvent.artifactUpdate({
    taskId,
    contextId,
    artifact: {
      artifactId: crypto.randomUUID(),
      name: "reply",
      description: "",
      parts,
      metadata: undefined,
      extensions: [],
    },
    append: false,
    lastChunk: true,
    metadata: undefined,
  }));
}

function executor(promptId: string, behaviour: () => Behaviour): AgentExecutor {
  const cancelled = new Set<string>();
  // How many questions each task has asked so far.
  const asked = new Map<string, number>();
  return {
    async execute(request: RequestContext, bus: ExecutionEventBus): Promise<void> {
      const { taskId, contextId } = request;
      const text = request.userMessage.parts.flatMap((part) =>
        part.content?.$case === "text" ? [part.content.value] : []
      ).join("\n");
      const asks = behaviour().asks ?? 0;
      if (asks > 0) return ask(request, bus, asks, text);
      const answer = demoAnswer(promptId, text, behaviour());
      const parts = [textPart(answer.text)];
      if (answer.data) parts.push(dataPart(answer.data));
      const { task, stream } = behaviour();
      if (!task && !stream) {
        bus.publish(AgentEvent.message(agentMessage(parts, contextId)));
        return;
      }
      const { update } = taskEvents(request, bus);
      bus.publish(AgentEvent.task(submitted(request)));
      update(TaskState.TASK_STATE_WORKING);
      // A working task works until `workMs` has passed since it started (read afresh, so a test can
      // end it early), or until it is cancelled.
      const started = Date.now();
      while (task === "working" && Date.now() - started < (behaviour().workMs ?? 500)) {
        if (cancelled.delete(taskId)) {
          return update(TaskState.TASK_STATE_CANCELED, agentMessage([textPart("cancelled")], contextId, taskId));
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const final = behaviour().finalState ?? "completed";
      if (final === "completed") {
        publishReply(bus, taskId, contextId, parts);
        update(FINAL_STATES.completed);
      } else {update(
          FINAL_STATES[final],
          agentMessage([textPart(`the agent needs more (${final})`)], contextId, taskId),
        );}
    },
    cancelTask(taskId: string, bus: ExecutionEventBus): Promise<void> {
      // A task that waits for an answer runs nothing that could see the flag: it ends here.
      if (asked.delete(taskId)) {
        bus.publish(AgentEvent.statusUpdate({
          taskId,
          contextId: "",
          status: { state: TaskState.TASK_STATE_CANCELED, message: undefined, timestamp: now() },
          metadata: undefined,
        }));
      } else cancelled.add(taskId);
      return Promise.resolve();
    },
  };

  /** A task that asks `asks` questions, one per turn, then answers with what the last answer said. */
  function ask(request: RequestContext, bus: ExecutionEventBus, asks: number, text: string): void {
    const { taskId, contextId } = request;
    const { status, update } = taskEvents(request, bus);
    const turn = asked.get(taskId) ?? 0;
    // Every turn starts with the task: a new one, or the one that asked.
    bus.publish(AgentEvent.task(
      request.task ? { ...request.task, status: status(TaskState.TASK_STATE_WORKING) } : submitted(request),
    ));
    if (turn < asks) {
      asked.set(taskId, turn + 1);
      const question = agentMessage([textPart(demoQuestion(turn + 1, asks))], contextId, taskId);
      return update(TaskState.TASK_STATE_INPUT_REQUIRED, question);
    }
    asked.delete(taskId);
    publishReply(bus, taskId, contextId, [textPart(demoAnswered(promptId, text))]);
    update(TaskState.TASK_STATE_COMPLETED);
  }
}
