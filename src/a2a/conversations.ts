/**
 * @module
 * One A2A conversation per Kafka key (`invoke.context: key`). Agents name conversations in one of
 * two ways, and the bridge follows each:
 *
 * - **The caller names it** (`@a2a-js/sdk` servers, most A2A agents): every message of a key carries
 *   a contextId derived from the pipeline and the key ({@link contextIdFor}), so nothing is stored.
 * - **The agent mints it** (Archestra's `/v2`, which accepts only contextIds it created): a key's
 *   first message goes without one, and the contextId of its reply is kept in the bridge's
 *   {@link Table} (a compacted topic, so restarts and replicas share it) for the key's next
 *   messages. When the agent no longer knows it ("Context not found": expired or deleted), the key
 *   starts a new conversation, whose id replaces the old.
 *
 * An endpoint mints when its address says it is Archestra's `/v2/a2a/{id}`, or once it has refused a
 * contextId the bridge derived.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryTable } from "../state/table.ts";
 * import { Conversations } from "./conversations.ts";
 * const conversations = new Conversations(new MemoryTable());
 * const talk = { pipeline: "support", key: "alice", url: "https://archestra.example/v2/a2a/4f0c" };
 * assert.equal(conversations.contextFor(talk), undefined); // a first message starts a conversation
 * await conversations.replied(talk, "ctx-minted-by-the-agent");
 * assert.equal(conversations.contextFor(talk), "ctx-minted-by-the-agent");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../errors.ts";
import { MemoryTable, type Table } from "../state/table.ts";
import { nameBasedUuid } from "../util/uuid.ts";

const log = getLogger(["agentstream", "conversations"]);

/** A key's conversation with one agent. */
export interface Talk {
  pipeline: string;
  key: string | Uint8Array;
  /** The agent's endpoint. */
  url: string;
}

/**
 * The A2A contextId the bridge derives for a Kafka key in a pipeline: the same for every message
 * with that key. Derived from the key's bytes, so two binary keys never share a conversation (a
 * text key gives the id of its UTF-8).
 */
export function contextIdFor(pipeline: string, key: string | Uint8Array): string {
  return nameBasedUuid(`context\n${pipeline}\n`, key);
}

/** Archestra's A2A 1.0 endpoint, which accepts only the contextIds it minted. */
const MINTING_PATH = /\/v2\/a2a\/[^/]+\/?$/;

/** The conversations of keys with agents: derived ids, or ids the agents minted. */
export class Conversations {
  readonly #table: Table;
  /** Endpoints that refused a contextId the bridge derived. */
  readonly #minting = new Set<string>();

  constructor(table: Table = new MemoryTable()) {
    this.#table = table;
  }

  /** Whether an endpoint mints its own contextIds. */
  mints(url: string): boolean {
    return this.#minting.has(url) || MINTING_PATH.test(new URL(url).pathname);
  }

  /** The contextId a key's next message carries; none for the first message to an agent that mints. */
  contextFor(talk: Talk): string | undefined {
    if (!this.mints(talk.url)) return contextIdFor(talk.pipeline, talk.key);
    const entry = this.#table.get(entryKey(talk)) as { contextId?: unknown } | undefined;
    return typeof entry?.contextId === "string" ? entry.contextId : undefined;
  }

  /**
   * The agent answered in a conversation: an agent that mints has its id kept for the key. A failed
   * write is logged: the key's next message then starts a new conversation.
   */
  async replied(talk: Talk, contextId: string | null): Promise<void> {
    if (!contextId || !this.mints(talk.url) || this.contextFor(talk) === contextId) return;
    try {
      await this.#table.set(entryKey(talk), { contextId });
    } catch (error) {
      log.warn("could not keep the conversation {contextId} of a key: {error}", {
        contextId,
        error: errorMessage(error),
      });
    }
  }

  /** The agent does not know the context sent: the key starts a new one, and the endpoint mints. */
  lost(talk: Talk): void {
    this.#minting.add(talk.url);
    this.#table.delete(entryKey(talk));
  }
}

/** Where a key's conversation with an agent is kept: no key bytes, which may be binary or personal. */
function entryKey({ pipeline, key, url }: Talk): string {
  return `context/${nameBasedUuid(`context\n${pipeline}\n${url}\n`, key)}`;
}
