/**
 * What the demo agent answers, whatever flavour serves it: a deterministic reply text, a keyword
 * severity for `classify`, and a window's readings summed up for `trends`. No model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { demoReply, demoSeverity, demoTrends } from "./demo_reply.ts";
 * assert.equal(demoReply("p", "hello\nworld"), "Demo agent [p] received 11 characters. First line: hello");
 * assert.equal(demoSeverity("I was charged twice"), "critical");
 * assert.equal(
 *   demoTrends("cpu, 4 readings:\n10:00 2\n10:01 2\n10:02 3\n10:03 9"),
 *   "4 readings, from 2 to 9, mean 4: rising. Anomalies (over twice the mean): 9.",
 * );
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

/**
 * What the demo agent makes of a window of readings, for `trends`: the last number on each line
 * after the first (the window's events), their range and mean, whether the second half is higher
 * or lower, and the readings more than twice the mean. Arithmetic, no model.
 */
export function demoTrends(text: string): string {
  const values = text.split("\n").slice(1).flatMap((line) => {
    const numbers = line.match(/-?\d+(\.\d+)?/g);
    return numbers ? [Number(numbers[numbers.length - 1])] : [];
  });
  if (!values.length) return "No readings found.";
  const mean = (list: number[]) => list.reduce((sum, v) => sum + v, 0) / list.length;
  const round = (v: number) => Math.round(v * 100) / 100;
  const all = mean(values);
  const half = Math.floor(values.length / 2);
  const [early, late] = half ? [mean(values.slice(0, half)), mean(values.slice(half))] : [all, all];
  const trend = late > early * 1.1 ? "rising" : late < early * 0.9 ? "falling" : "steady";
  const anomalies = values.filter((v) => all > 0 && v > 2 * all);
  return `${values.length} readings, from ${round(Math.min(...values))} to ${round(Math.max(...values))}, ` +
    `mean ${round(all)}: ${trend}. ` +
    (anomalies.length ? `Anomalies (over twice the mean): ${anomalies.map(round).join(", ")}.` : "No anomalies.");
}

/** How a prompt id answers: `classify` adds a severity, `trends` reads a window of readings. */
export interface DemoAnswerStyle {
  classify?: boolean;
  trends?: boolean;
}

/** The demo agent's answer to `text`: its reply text, and the data part `classify` adds. */
export function demoAnswer(
  promptId: string,
  text: string,
  style: DemoAnswerStyle,
): { text: string; data?: Record<string, unknown> } {
  return {
    text: style.trends ? demoTrends(text) : demoReply(promptId, text),
    ...(style.classify ? { data: { severity: demoSeverity(text) } } : {}),
  };
}
