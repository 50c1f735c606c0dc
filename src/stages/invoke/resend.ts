/**
 * @module
 * The message a job sends, and the two refusals that change it and send it again, spending no
 * retry: an id the agent has already answered (`seen`: a redelivery after a crash, to Archestra's
 * `/v2`) goes again under a new id, at most {@link MAX_RESENDS} times; a conversation the agent no
 * longer knows (`context-lost`, with `invoke.context: key`) is dropped, and the key starts a new one.
 *
 * @example
 * ```ts
 * import { failure } from "../../errors.ts";
 * import { firstAttempt } from "./policy.ts";
 * import { Outgoing, resentMessageId, resends } from "./resend.ts";
 * const outgoing = new Outgoing({ messageId: "2c8b4f0a-1f1e-8c3d-9a7b-5e6f7a8b9c0d", text: "hi", metadata: {} });
 * const seen = { failure: failure("invoke", "seen", "A message with the given ID already exists") };
 * const outcome = await resends(outgoing)(firstAttempt({ ack: { stale: false } }), () => Promise.resolve(seen));
 * if (!("again" in outcome)) throw new Error("sent again, no retry spent");
 * if (outgoing.message.messageId !== resentMessageId(outgoing.original.messageId, 1)) throw new Error("under a new id");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import type { Conversations, Talk } from "../../a2a/conversations.ts";
import type { OutgoingMessage } from "../../a2a/dialect.ts";
import { failure } from "../../errors.ts";
import { nameBasedUuid } from "../../util/uuid.ts";
import { failureOf, type Policy } from "./policy.ts";

const log = getLogger(["agentstream", "invoke"]);

/** The most times a message the agent has already seen is sent again under a new id. */
export const MAX_RESENDS = 10;

/**
 * The id under which a message is sent again when the agent has already seen its id (a redelivery
 * after a crash, to Archestra's `/v2`): derived from the original id and how many times it was sent
 * again, so a second crash meets the same ids again, in the same order.
 *
 * @example
 * ```ts
 * import { resentMessageId } from "./resend.ts";
 * const id = "2c8b4f0a-1f1e-8c3d-9a7b-5e6f7a8b9c0d";
 * if (resentMessageId(id, 1) !== resentMessageId(id, 1) || resentMessageId(id, 1) === resentMessageId(id, 2)) {
 *   throw new Error("stable, and new for each resend");
 * }
 * ```
 */
export function resentMessageId(messageId: string, resend: number): string {
  return nameBasedUuid(`resent\n${resend}\n`, messageId);
}

function withoutContext({ contextId: _, ...message }: OutgoingMessage): OutgoingMessage {
  return message;
}

/** The message a job sends now, the one it began with, and how many times it was sent anew. */
export class Outgoing {
  original: OutgoingMessage;
  message: OutgoingMessage;
  resent = 0;

  constructor(message: OutgoingMessage) {
    this.original = message;
    this.message = message;
  }
}

/** Resends of `outgoing`; with `talk`, the key's conversation in `conversations` (to `url`). */
export function resends(
  outgoing: Outgoing,
  conversation?: { talk: Talk | undefined; conversations: Conversations; url: string },
): Policy {
  return async (attempt, next) => {
    const outcome = await next(attempt);
    const seen = failureOf(outcome, "seen");
    if (seen) {
      // The agent has answered this id before (the message is delivered again after a crash) and
      // keeps no answer to give back: the message goes again as a new one, spending no retry.
      if (outgoing.resent === MAX_RESENDS) {
        const why = `${seen.failure.message} (and for each of ${MAX_RESENDS} new ids)`;
        return { failure: failure("invoke", "permanent", why, { attempts: attempt.number }) };
      }
      outgoing.resent++;
      outgoing.message = {
        ...outgoing.original,
        messageId: resentMessageId(outgoing.original.messageId, outgoing.resent),
      };
      return { again: "the agent has seen the message's id" };
    }
    const talk = conversation?.talk;
    if (failureOf(outcome, "context-lost") && talk && outgoing.message.contextId) {
      // The agent no longer knows the key's conversation (expired or deleted), or accepts only ids
      // it minted: the key starts a new one, spending no retry.
      conversation.conversations.lost(talk);
      log.info("the agent at {url} does not know the conversation of a key; starting a new one", {
        url: conversation.url,
      });
      outgoing.original = withoutContext(outgoing.original);
      outgoing.message = withoutContext(outgoing.message);
      return { again: "the agent lost the key's conversation" };
    }
    return outcome;
  };
}
