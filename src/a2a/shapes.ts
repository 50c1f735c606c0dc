/**
 * What agents answer, read by shape. Real agents disagree on the wire: Archestra's `/v1` returns a
 * bare `{messageId, role, parts}` with no `kind`, `@a2a-js/sdk` 0.3 servers tag everything with
 * `kind`, and A2A 1.0 wraps results as `{message}` / `{task}` (events as `{statusUpdate}` /
 * `{artifactUpdate}`), names roles `ROLE_AGENT`, states `TASK_STATE_*`, and drops `kind` from
 * parts. Everything here turns any of them into one internal form (0.3's, with `kind`), so the rest
 * of the bridge and the reply envelope see one shape whichever agent answered.
 *
 * A value of no known shape throws a {@link ShapeError} that says what came back.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readResult } from "./shapes.ts";
 * // Archestra /v1: no kind anywhere.
 * const bare = readResult({ messageId: "m", role: "agent", parts: [{ kind: "text", text: "hi" }] });
 * assert.equal(bare.kind, "message");
 * // A2A 1.0: wrapped, states in upper case.
 * const task = readResult({ task: { id: "t", status: { state: "TASK_STATE_WORKING" } } });
 * assert.equal(task.kind === "task" && task.status.state, "working");
 * ```
 *
 * @module
 */
import { jsonText } from "../util/json_text.ts";

/** A part of a message or artifact, in its internal (0.3) form. */
export type Part =
  | { kind: "text"; text: string; metadata?: Record<string, unknown> }
  | { kind: "data"; data: unknown; metadata?: Record<string, unknown> }
  | { kind: "file"; file: Record<string, unknown>; metadata?: Record<string, unknown> };

export interface Message {
  kind: "message";
  role: "user" | "agent";
  messageId?: string;
  parts: Part[];
  contextId?: string;
  taskId?: string;
}

/** Task states with 0.3's names (1.0's `TASK_STATE_INPUT_REQUIRED` is `input-required`). */
export type TaskState =
  | "submitted"
  | "working"
  | "input-required"
  | "auth-required"
  | "completed"
  | "failed"
  | "canceled"
  | "rejected"
  | "unknown";

export interface Artifact {
  artifactId: string;
  name?: string;
  parts: Part[];
}

export interface Task {
  kind: "task";
  id: string;
  contextId?: string;
  status: { state: TaskState; message?: Message };
  artifacts?: Artifact[];
  /** Agent-specific: Archestra puts what a task waits to have approved in `approvalRequests`. */
  metadata?: Record<string, unknown>;
}

export interface StatusUpdate {
  kind: "status-update";
  taskId: string;
  contextId?: string;
  status: Task["status"];
}

export interface ArtifactUpdate {
  kind: "artifact-update";
  taskId: string;
  contextId?: string;
  artifact: Artifact;
  append?: boolean;
}

/** One event of a streamed answer. */
export type StreamEvent = Message | Task | StatusUpdate | ArtifactUpdate;

/** An answer that has none of the shapes agents are known to send. */
export class ShapeError extends TypeError {
  override name = "ShapeError";
}

type Obj = Record<string, unknown>;
const isObject = (value: unknown): value is Obj => value !== null && typeof value === "object" && !Array.isArray(value);
const optionalString = (value: unknown): string | undefined => typeof value === "string" ? value : undefined;

/** A short JSON excerpt of what came back, for failure messages. */
export function describe(value: unknown): string {
  let text: string;
  try {
    text = jsonText(value);
  } catch {
    text = String(value);
  }
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

/** A Message or Task result of `message/send` / `SendMessage`, in any of the shapes agents send. */
export function readResult(value: unknown): Message | Task {
  const event = readStreamEvent(value);
  if (event.kind === "message" || event.kind === "task") return event;
  throw new ShapeError(`agent result is neither a Message nor a Task: ${describe(value)}`);
}

/** A Task, as `tasks/get` / `GetTask` returns it (1.0 may wrap it as `{task}`). */
export function readTask(value: unknown): Task {
  const result = readResult(value);
  if (result.kind !== "task") throw new ShapeError(`agent answered a task query with no Task: ${describe(value)}`);
  return result;
}

/** One event of `message/stream` / `SendStreamingMessage`. */
export function readStreamEvent(value: unknown): StreamEvent {
  if (!isObject(value)) throw new ShapeError(`agent result is neither a Message nor a Task: ${describe(value)}`);
  // A2A 1.0: the type is the one field that is present.
  if (isObject(value.message)) return readMessage(value.message);
  if (isObject(value.task)) return readTaskObject(value.task);
  if (isObject(value.statusUpdate)) return readStatusUpdate(value.statusUpdate);
  if (isObject(value.artifactUpdate)) return readArtifactUpdate(value.artifactUpdate);
  // 0.3, with `kind` or (Archestra's /v1) without.
  switch (value.kind) {
    case "message":
      return readMessage(value);
    case "task":
      return readTaskObject(value);
    case "status-update":
      return readStatusUpdate(value);
    case "artifact-update":
      return readArtifactUpdate(value);
    case undefined:
      break;
    default:
      throw new ShapeError(`agent result is neither a Message nor a Task: ${describe(value)}`);
  }
  if (Array.isArray(value.parts) && ("role" in value || "messageId" in value)) return readMessage(value);
  if (typeof value.id === "string" && isObject(value.status)) return readTaskObject(value);
  if (typeof value.taskId === "string" && isObject(value.status)) return readStatusUpdate(value);
  if (typeof value.taskId === "string" && isObject(value.artifact)) return readArtifactUpdate(value);
  throw new ShapeError(`agent result is neither a Message nor a Task: ${describe(value)}`);
}

/** A message in any shape; its role is read loosely (`agent`, `ROLE_AGENT`). */
export function readMessage(value: Obj): Message {
  const role = String(value.role ?? "agent").toLowerCase().replace(/^role_/, "");
  return {
    kind: "message",
    role: role === "user" ? "user" : "agent",
    messageId: optionalString(value.messageId),
    parts: readParts(value.parts, "message"),
    contextId: optionalString(value.contextId),
    taskId: optionalString(value.taskId),
  };
}

function readTaskObject(value: Obj): Task {
  if (typeof value.id !== "string") throw new ShapeError(`task has no id: ${describe(value)}`);
  if (!isObject(value.status)) throw new ShapeError(`task ${value.id} has no status`);
  if (value.artifacts !== undefined && !Array.isArray(value.artifacts)) {
    throw new ShapeError(`task ${value.id}: artifacts is not a list`);
  }
  return {
    kind: "task",
    id: value.id,
    contextId: optionalString(value.contextId),
    status: readStatus(value.status),
    artifacts: (value.artifacts as unknown[] | undefined)?.map(readArtifact),
    ...(isObject(value.metadata) ? { metadata: value.metadata } : {}),
  };
}

function readStatus(value: Obj): Task["status"] {
  return {
    state: readState(value.state),
    ...(isObject(value.message) ? { message: readMessage(value.message) } : {}),
  };
}

const STATES = new Set<TaskState>([
  "submitted",
  "working",
  "input-required",
  "auth-required",
  "completed",
  "failed",
  "canceled",
  "rejected",
  "unknown",
]);

/** `working`, `TASK_STATE_WORKING`, `TASK_STATE_INPUT_REQUIRED`, `cancelled`: one name each. */
export function readState(value: unknown): TaskState {
  if (typeof value !== "string") throw new ShapeError(`task state is not a string: ${describe(value)}`);
  const name = value.toLowerCase().replace(/^task_state_/, "").replaceAll("_", "-").replace("cancelled", "canceled");
  if (!STATES.has(name as TaskState)) throw new ShapeError(`unknown task state ${describe(value)}`);
  return name as TaskState;
}

function readStatusUpdate(value: Obj): StatusUpdate {
  if (typeof value.taskId !== "string" || !isObject(value.status)) {
    throw new ShapeError(`status update without task id or status: ${describe(value)}`);
  }
  return {
    kind: "status-update",
    taskId: value.taskId,
    contextId: optionalString(value.contextId),
    status: readStatus(value.status),
  };
}

function readArtifactUpdate(value: Obj): ArtifactUpdate {
  if (typeof value.taskId !== "string" || !isObject(value.artifact)) {
    throw new ShapeError(`artifact update without task id or artifact: ${describe(value)}`);
  }
  return {
    kind: "artifact-update",
    taskId: value.taskId,
    contextId: optionalString(value.contextId),
    artifact: readArtifact(value.artifact),
    append: value.append === true,
  };
}

function readArtifact(value: unknown): Artifact {
  if (!isObject(value)) throw new ShapeError(`artifact is not an object: ${describe(value)}`);
  return {
    artifactId: String(value.artifactId ?? ""),
    ...(typeof value.name === "string" ? { name: value.name } : {}),
    parts: readParts(value.parts, "artifact"),
  };
}

/** Parts with `kind` (0.3) or known by their field (1.0: `{text}`, `{data}`, `{url}`, `{raw}`). */
function readParts(value: unknown, owner: string): Part[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ShapeError(`${owner} parts is not a list: ${describe(value)}`);
  return value.flatMap((part): Part[] => {
    if (!isObject(part)) return [];
    const metadata = isObject(part.metadata) ? { metadata: part.metadata } : {};
    if (part.kind === "text" || (part.kind === undefined && typeof part.text === "string")) {
      return [{ kind: "text", text: String(part.text ?? ""), ...metadata }];
    }
    if (part.kind === "data" || (part.kind === undefined && "data" in part)) {
      return [{ kind: "data", data: part.data, ...metadata }];
    }
    if (part.kind === "file" && isObject(part.file)) return [{ kind: "file", file: part.file, ...metadata }];
    if (part.kind === undefined && ("url" in part || "raw" in part)) {
      const { metadata: _, ...file } = part;
      return [{ kind: "file", file, ...metadata }];
    }
    return [];
  });
}

/** The text parts of a list of parts, one per line. */
export function textOf(parts: readonly Part[] | undefined): string {
  return (parts ?? []).flatMap((part) => part.kind === "text" ? [part.text] : []).join("\n");
}
