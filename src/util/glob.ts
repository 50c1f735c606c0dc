/**
 * @module
 * Topic globs: `*` stands for any run of characters within one dot-separated segment, `**` for any
 * run of characters across segments. `orders.*` therefore matches `orders.events` but neither
 * `orders.events.responses` nor the literal topic `orders.` alone, which is what the old bridge
 * subscribed to by mistake.
 *
 * @example
 * ```ts
 * import { globToRegExp, isGlob } from "./glob.ts";
 * if (!globToRegExp("orders.*").test("orders.events")) throw new Error("one segment");
 * if (globToRegExp("orders.*").test("orders.events.responses")) throw new Error("not two");
 * if (isGlob("customer.events")) throw new Error("a plain name");
 * ```
 */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (char === "*") {
      source += "[^.]+";
    } else if (char === "?") {
      source += "[^.]";
    } else {
      source += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${source}$`);
}

/** Whether a topic name holds glob characters, as opposed to naming one topic exactly. */
export function isGlob(topic: string): boolean {
  return /[*?]/.test(topic);
}

/** Whether `topic` is named by `pattern`, an exact topic name or a glob. */
export function topicMatches(pattern: string, topic: string): boolean {
  return isGlob(pattern) ? globToRegExp(pattern).test(topic) : pattern === topic;
}
