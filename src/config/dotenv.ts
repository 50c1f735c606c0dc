/**
 * @module
 * Reads a `.env` file (`NAME=value` lines, `#` comments, optional `export `, single or double
 * quotes). A missing file is no error: the file is optional.
 *
 * @example
 * ```ts
 * import { parseDotEnv } from "./dotenv.ts";
 * parseDotEnv('A=1\n# note\nB="two words"\n'); // { A: "1", B: "two words" }
 * ```
 */
export function parseDotEnv(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match) continue;
    let value = match[2];
    const quoted = /^(["'])(.*)\1$/.exec(value);
    if (quoted) value = quoted[1] === '"' ? quoted[2].replace(/\\n/g, "\n") : quoted[2];
    else value = value.replace(/\s+#.*$/, "");
    result[match[1]] = value;
  }
  return result;
}

/** The variables of `path`, or none when it does not exist. */
export async function readDotEnv(path = ".env"): Promise<Record<string, string>> {
  try {
    return parseDotEnv(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
}
