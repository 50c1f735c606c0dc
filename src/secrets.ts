/**
 * @module
 * Secrets the process knows (the agent token, the SASL password), and {@link redact}, which blanks
 * them out of any text. Every way text leaves the process for people goes through it: log lines,
 * failure messages (and so DLQ headers and counters) and fatal errors. A secret can still reach us
 * from outside, for example an agent that echoes the `Authorization` header in its error body.
 *
 * @example
 * ```ts
 * import { redact, registerSecret } from "./secrets.ts";
 * registerSecret("s3cr3t-token");
 * redact("HTTP 401: bad token s3cr3t-token"); // "HTTP 401: bad token [redacted]"
 * ```
 */

const secrets = new Set<string>();
/** The secrets longest first, so that one containing another is blanked whole; rebuilt on change. */
let ordered: string[] = [];

/** Values shorter than this are not treated as secrets: blanking "a" everywhere would garble text. */
const MIN_LENGTH = 4;

/**
 * Adds a value that must never appear in output, in every form text can carry it: as is, inside a
 * JSON string, and as a URL carries it (percent-encoded with either case of hex, `+` for a space).
 * Empty and very short values are ignored.
 */
export function registerSecret(value: string | undefined): void {
  if (value === undefined || value.length < MIN_LENGTH) return;
  const percent = encodeURIComponent(value);
  const forms = [
    value,
    JSON.stringify(value).slice(1, -1),
    percent,
    percent.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()),
    new URLSearchParams({ "": value }).toString().slice(1), // form encoding: a space is "+"
  ];
  for (const form of forms) secrets.add(form);
  ordered = [...secrets].sort((a, b) => b.length - a.length);
}

/**
 * Registers a URL's credentials (its password, and query parameters whose name says token, key,
 * secret, password, sig or auth) decoded and in the form the URL spells them, and returns the URL.
 */
export function registerUrlSecrets(url: string): string {
  const parsed = new URL(url);
  registerSecret(parsed.password);
  registerSecret(decoded(parsed.password));
  for (const pair of parsed.search.slice(1).split("&")) {
    const [name, raw = ""] = pair.split("=", 2);
    if (!/token|key|secret|password|passwd|sig|auth/i.test(decoded(name))) continue;
    registerSecret(raw);
    registerSecret(new URLSearchParams(pair).values().next().value);
  }
  return url;
}

/** Percent-decoded text; text that is no valid percent-encoding (`p%zz`) as it is. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `text` with every registered secret replaced by `[redacted]`. */
export function redact(text: string): string {
  for (const secret of ordered) {
    if (text.includes(secret)) text = text.replaceAll(secret, "[redacted]");
  }
  return text;
}

/** Forgets every registered secret (for tests). */
export function clearSecrets(): void {
  secrets.clear();
  ordered = [];
}
