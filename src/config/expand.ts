/**
 * @module
 * `${VAR}` expansion in configuration values. `${VAR:-fallback}` uses `fallback` when `VAR` is
 * unset or empty; `$${` writes a literal `${`. Expansion happens on parsed values, never on file
 * text, so a variable's value cannot change the structure of the file.
 *
 * @example
 * ```ts
 * import { expandVariables } from "./expand.ts";
 * expandVariables({ id: "${PROMPT}" }, { PROMPT: "p-1" }); // { value: { id: "p-1" }, problems: [] }
 * ```
 */
export interface ExpansionProblem {
  readonly path: (string | number)[];
  readonly reason: string;
}

/** Expands every string inside `value`; unset variables are reported with their path. */
export function expandVariables(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
): { value: unknown; problems: ExpansionProblem[] } {
  const problems: ExpansionProblem[] = [];
  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === "string") return expandString(node, env, path, problems);
    if (Array.isArray(node)) return node.map((item, index) => walk(item, [...path, index]));
    if (node !== null && typeof node === "object") {
      return Object.fromEntries(
        Object.entries(node).map(([key, item]) => [key, walk(item, [...path, key])]),
      );
    }
    return node;
  };
  return { value: walk(value, []), problems };
}

function expandString(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  path: (string | number)[],
  problems: ExpansionProblem[],
): string {
  return text.replace(
    /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
    (whole, name: string | undefined, fallback: string | undefined) => {
      if (whole === "$${") return "${";
      const value = env[name!];
      if (value !== undefined && value !== "") return value;
      if (fallback !== undefined) return fallback;
      problems.push({ path, reason: `environment variable ${name} is not set` });
      return "";
    },
  );
}

/**
 * `env` where an unset variable reads as `<NAME>` and its name is added to `unset`: for checking
 * configuration away from the environment it will run in (validate, the deployment tests).
 */
export function standInEnv(env: Record<string, string>, unset: Set<string>): Record<string, string> {
  return new Proxy(env, {
    get(target, name) {
      if (typeof name !== "string") return undefined;
      if (target[name] !== undefined) return target[name];
      unset.add(name);
      return `<${name}>`;
    },
  });
}
