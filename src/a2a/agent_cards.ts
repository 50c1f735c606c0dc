/**
 * Agent cards fetched as calls need them (for example, whether an agent streams), once per
 * endpoint. A card that could not be fetched is asked for again after a minute, not on every call.
 *
 * @example
 * ```ts
 * import { AgentCards } from "./agent_cards.ts";
 * const cards = new AgentCards();
 * // if (await cards.streams(url, token)) ... message/stream
 * ```
 */
import { type AgentCard, fetchAgentCard } from "./preflight.ts";
import { type A2AVersion, versionFromCard } from "./dialect.ts";

export class AgentCards {
  readonly #cards = new Map<string, Promise<AgentCard | undefined>>();

  /** The card of the endpoint `url`, or undefined when it has none or cannot be reached now. */
  card(url: string, token?: string): Promise<AgentCard | undefined> {
    let card = this.#cards.get(url);
    if (!card) {
      card = fetchAgentCard({ url, token }).then((check) => "card" in check ? check.card : undefined);
      this.#cards.set(url, card);
      card.then((found) => {
        if (!found) Deno.unrefTimer(setTimeout(() => this.#cards.delete(url), 60_000));
      });
    }
    return card;
  }

  /** The A2A version the agent's card says it speaks (0.3 when it has no card). */
  async version(url: string, token?: string): Promise<A2AVersion> {
    return versionFromCard(await this.card(url, token));
  }

  /** Whether the agent's card says it answers `message/stream`. */
  async streams(url: string, token?: string): Promise<boolean> {
    return (await this.card(url, token))?.capabilities?.streaming === true;
  }
}
