/**
 * @module
 * TLS files named by settings (Kafka's, the schema registry's), read once at start.
 *
 * @example
 * ```ts
 * import { pemFile } from "./pem_file.ts";
 * import { FatalError } from "../errors.ts";
 * if (pemFile("KAFKA_SSL_CA_FILE", undefined) !== undefined) throw new Error("unset: none");
 * try {
 *   pemFile("KAFKA_SSL_CA_FILE", "/no/such/ca.pem");
 *   throw new Error("read");
 * } catch (error) {
 *   if (!(error instanceof FatalError) || !error.message.startsWith("environment:KAFKA_SSL_CA_FILE")) throw error;
 * }
 * ```
 */
import { errorMessage, FatalError } from "../errors.ts";

/** Reads a PEM file named by a setting; a file that cannot be read is a configuration error naming it. */
export function pemFile(variable: string, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new FatalError(`environment:${variable}: cannot read ${path}: ${errorMessage(error)}`, { config: true });
  }
}
