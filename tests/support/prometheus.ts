/** Reading a Prometheus text exposition in tests. */

/**
 * The value of the first sample `name{labels…}` whose labels include `labels`, or undefined.
 *
 * @example
 * ```ts
 * sample('x_total{pipeline="a"} 3\n', "x_total", { pipeline: "a" }); // 3
 * ```
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([label, value]) => have[label] === value)) return Number(match[3]);
  }
  return undefined;
}
