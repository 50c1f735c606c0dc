/**
 * The two A2A versions agents speak over JSON-RPC, as far as a caller needs them: method names,
 * headers and the request's shape. Answers are read by shape whatever the version (see
 * {@link readResult}), since agents do not always answer in the version they were asked in.
 *
 * - `0.3`: `message/send`, `tasks/get`…, `kind` on messages and parts, `configuration.blocking`.
 *   Archestra's `/v1/a2a/{id}` and `@a2a-js/sdk` 0.3 servers.
 * - `1.0`: `SendMessage`, `GetTask`…, `ROLE_USER`, parts without `kind`,
 *   `configuration.returnImmediately`, and the `A2A-Version: 1.0` header. Archestra's
 *   `/v2/a2a/{id}` and `@a2a-js/sdk` 1.x servers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dialect } from "./dialect.ts";
 * const v1 = dialect("1.0");
 * assert.equal(v1.methods.send, "SendMessage");
 * const params = v1.sendParams({ messageId: "m-1", text: "hi", metadata: {} }, { blocking: true }) as {
 *   message: { role: string; parts: unknown[] };
 * };
 * assert.deepEqual(params.message.parts, [{ text: "hi" }]);
 * ```
 *
 * @module
 */
/** The A2A versions the bridge speaks. */
export type A2AVersion = "0.3" | "1.0";

/** What the bridge sends: one text, with ids and metadata. */
export interface OutgoingMessage {
  messageId: string;
  contextId?: string;
  /** The task this message answers (one that stopped to ask). */
  taskId?: string;
  /** Its one text part; none gives a message with no parts (an answer made of approvals alone). */
  text?: string;
  metadata: Record<string, unknown>;
}

export interface Dialect {
  readonly version: A2AVersion;
  readonly methods: { readonly send: string; readonly stream: string; readonly get: string; readonly cancel: string };
  /** Headers every call carries. */
  readonly headers: Readonly<Record<string, string>>;
  /** `params` of a send; `blocking: false` asks the agent to answer at once with its task. */
  sendParams(message: OutgoingMessage, options: { blocking: boolean }): unknown;
  /** `params` of a task query or cancel. */
  taskParams(taskId: string): unknown;
}

const ACCEPTED_OUTPUT_MODES = ["text/plain", "application/json"];

const v0_3: Dialect = {
  version: "0.3",
  methods: { send: "message/send", stream: "message/stream", get: "tasks/get", cancel: "tasks/cancel" },
  headers: {},
  sendParams: ({ messageId, contextId, taskId, text, metadata }, { blocking }) => ({
    message: {
      kind: "message",
      role: "user",
      messageId,
      ...(contextId ? { contextId } : {}),
      ...(taskId ? { taskId } : {}),
      parts: text === undefined ? [] : [{ kind: "text", text }],
      metadata,
    },
    configuration: { blocking, acceptedOutputModes: ACCEPTED_OUTPUT_MODES },
  }),
  taskParams: (id) => ({ id }),
};

const v1_0: Dialect = {
  version: "1.0",
  methods: { send: "SendMessage", stream: "SendStreamingMessage", get: "GetTask", cancel: "CancelTask" },
  headers: { "A2A-Version": "1.0" },
  sendParams: ({ messageId, contextId, taskId, text, metadata }, { blocking }) => ({
    message: {
      role: "ROLE_USER",
      messageId,
      ...(contextId ? { contextId } : {}),
      ...(taskId ? { taskId } : {}),
      parts: text === undefined ? [] : [{ text }],
      metadata,
    },
    configuration: { returnImmediately: !blocking, acceptedOutputModes: ACCEPTED_OUTPUT_MODES },
  }),
  taskParams: (id) => ({ id }),
};

/** The dialect of an A2A version. */
export function dialect(version: A2AVersion): Dialect {
  return version === "1.0" ? v1_0 : v0_3;
}

/**
 * The version an agent card says its JSON-RPC interface speaks: 1.0 where an interface
 * (`supportedInterfaces[]`) says 1.x, else 0.3 (a 0.3 card, Archestra's card with no version, no card).
 */
export function versionFromCard(card: unknown): A2AVersion {
  const interfaces = (card as { supportedInterfaces?: unknown } | undefined)?.supportedInterfaces;
  if (!Array.isArray(interfaces)) return "0.3";
  const speaks1 = interfaces.some((i) =>
    i && typeof i === "object" && String(i.protocolVersion ?? "").startsWith("1.") &&
    (i.protocolBinding === undefined || String(i.protocolBinding).toUpperCase() === "JSONRPC")
  );
  return speaks1 ? "1.0" : "0.3";
}
