/**
 * @module
 * Agent cards fetched as calls need them (for example, whether an agent streams), once per
 * endpoint. A card that could not be fetched is asked for again after a minute, not on every call.
 *
 * @example
 * ```ts
 * import { AgentCards } from "./agent_cards.ts";
 * const cards = new AgentCards();
 * // An endpoint nobody serves has no card: it does not stream, speaks 0.3, and does not answer.
 * if (await cards.streams("http://127.0.0.1:9/a2a")) throw new Error("no card, no stream");
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

  /**
   * Whether the agent is up now: its card answers, asked afresh (a cheap call that involves no
   * model). Tells a message the agent keeps failing on from an agent that fails every message.
   */
  async answers(url: string, token?: string): Promise<boolean> {
    const check = await fetchAgentCard({ url, token }, 5_000);
    if ("card" in check) this.#cards.set(url, Promise.resolve(check.card));
    return "card" in check;
  }

  /** Whether the agent's card says it answers `message/stream`. */
  async streams(url: string, token?: string): Promise<boolean> {
    return (await this.card(url, token))?.capabilities?.streaming === true;
  }
}
