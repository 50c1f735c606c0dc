/**
 * Streamed A2A answers (`message/stream`, `SendStreamingMessage`): server-sent events, each a
 * JSON-RPC response whose result is a Message, a Task, a status update or an artifact update (read
 * by shape, see `shapes.ts`). {@link foldEvent} folds them into the one result a plain send would
 * have given: the Message, or the Task as the events leave it.
 *
 * @example
 * ```ts
 * import { foldEvent } from "./stream_events.ts";
 * let result = foldEvent(undefined, { kind: "task", id: "t", contextId: "c", status: { state: "working" } });
 * result = foldEvent(result, { kind: "status-update", taskId: "t", contextId: "c", status: { state: "completed" } });
 * if (result.kind !== "task" || result.status.state !== "completed") throw new Error("the task, completed");
 * ```
 *
 * @module
 */
import type { Artifact, Message, StreamEvent, Task } from "./shapes.ts";

/** The result after one more event. Updates for a task not seen yet start one. */
export function foldEvent(result: Message | Task | undefined, event: StreamEvent): Message | Task {
  if (event.kind === "message" || event.kind === "task") return event;
  const task: Task = result?.kind === "task"
    ? { ...result }
    : { kind: "task", id: event.taskId, contextId: event.contextId, status: { state: "working" } };
  if (event.kind === "status-update") return { ...task, status: event.status };
  const artifacts: Artifact[] = [...task.artifacts ?? []];
  const at = artifacts.findIndex((a) => a.artifactId === event.artifact.artifactId);
  if (at < 0) artifacts.push(event.artifact);
  else if (event.append) {
    artifacts[at] = { ...artifacts[at], parts: [...artifacts[at].parts, ...event.artifact.parts] };
  } else artifacts[at] = event.artifact;
  return { ...task, artifacts };
}

/** Splits a text/event-stream body into the `data` of each event, as the bytes arrive. */
export async function* eventData(body: ReadableStream<Uint8Array>): AsyncIterable<string> {
  let buffer = "";
  let carriedReturn = false;
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    // A "\r\n" split over two chunks is one line end, not two.
    let text: string = (carriedReturn ? "\r" : "") + chunk;
    carriedReturn = text.endsWith("\r");
    if (carriedReturn) text = text.slice(0, -1);
    buffer += text.replace(/\r\n?/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((line) => line.startsWith("data:")).map((line) =>
        line.slice(5).replace(/^ /, "")
      );
      if (data.length) yield data.join("\n");
    }
  }
  if (carriedReturn) buffer += "\n";
  const rest = buffer.split("\n").filter((line) => line.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
  if (rest.length) yield rest.join("\n");
}
