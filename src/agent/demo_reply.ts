/**
 * What the demo agent answers, whatever flavour serves it: a deterministic reply text, and a
 * keyword severity for `classify`. No model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { demoReply, demoSeverity } from "./demo_reply.ts";
 * assert.equal(demoReply("p", "hello\nworld"), "Demo agent [p] received 11 characters. First line: hello");
 * assert.equal(demoSeverity("I was charged twice"), "critical");
 * ```
 *
 * @module
 */

/** How the demo agent classifies a text, for `classify`: deterministic keywords, no model. */
export function demoSeverity(text: string): "critical" | "normal" {
  return /charged|refund|outage|down|security|breach/i.test(text) ? "critical" : "normal";
}

/** The deterministic reply text for a request text sent to a prompt id. */
export function demoReply(promptId: string, text: string): string {
  const firstLine = text.split("\n").find((line) => line.trim()) ?? "";
  return `Demo agent [${promptId}] received ${text.length} characters. First line: ${firstLine.slice(0, 120)}`;
}
