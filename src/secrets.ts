/**
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

/** Values shorter than this are not treated as secrets: blanking "a" everywhere would garble text. */
const MIN_LENGTH = 4;

/** Adds a value that must never appear in output; empty and very short values are ignored. */
export function registerSecret(value: string | undefined): void {
  if (value === undefined || value.length < MIN_LENGTH) return;
  secrets.add(value);
  // As it reads inside a JSON string (a JSON log line), when that differs.
  const escaped = JSON.stringify(value).slice(1, -1);
  if (escaped !== value) secrets.add(escaped);
}

/** `text` with every registered secret replaced by `[redacted]`. */
export function redact(text: string): string {
  for (const secret of secrets) {
    if (text.includes(secret)) text = text.replaceAll(secret, "[redacted]");
  }
  return text;
}

/** Forgets every registered secret (for tests). */
export function clearSecrets(): void {
  secrets.clear();
}
