/**
 * @module
 * The schema registry client the bridge's reader and `deno task send`'s writer share: Confluent's
 * (`@confluentinc/schemaregistry`), signed in with basic auth or a bearer token, a connection a
 * request, a 10 s limit and one quick retry; and {@link unavailable}, which tells a registry that
 * cannot answer (or refuses the credentials, or serves no registry API) from one that answered.
 *
 * @example
 * ```ts
 * import { registryClient } from "./client.ts";
 * const { url } = registryClient({ url: "http://bridge:s3cret@127.0.0.1:1/apis/ccompat/v7/" });
 * if (url !== "http://127.0.0.1:1/apis/ccompat/v7") throw new Error(url); // no credentials in the URL
 * ```
 */
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import { SchemaRegistryClient } from "@confluentinc/schemaregistry/dist/schemaregistry-client.js";
import type { Client } from "@confluentinc/schemaregistry/dist/schemaregistry-client.js";
import { RestError } from "@confluentinc/schemaregistry/dist/rest-error.js";
import { errorMessage } from "../errors.ts";
import { registerSecret } from "../secrets.ts";
import { RegistryUnavailable } from "./wire.ts";
import { pemFile } from "../config/pem_file.ts";
import type { Settings } from "../config/settings.ts";

/** Where the registry is and how the bridge signs in (basic auth or a bearer token). */
export interface RegistryOptions {
  url: string;
  username?: string;
  password?: string;
  token?: string;
  /** PEM CA certificate(s) to trust for an https:// URL, beside the system's. */
  ca?: string;
}

/** The settings a registry client is made from (Kafka's CA among them: see {@link registryOptions}). */
export type RegistrySettings = Pick<
  Settings,
  | "schemaRegistryUrl"
  | "schemaRegistryUsername"
  | "schemaRegistryPassword"
  | "schemaRegistryToken"
  | "schemaRegistryCaFile"
  | "sslCaFile"
>;

/** The registry settings as client options, its CA read (SCHEMA_REGISTRY_SSL_CA_FILE, else Kafka's KAFKA_SSL_CA_FILE). */
export function registryOptions(settings: RegistrySettings): RegistryOptions {
  return {
    url: settings.schemaRegistryUrl!,
    username: settings.schemaRegistryUsername,
    password: settings.schemaRegistryPassword,
    token: settings.schemaRegistryToken,
    // The trust Kafka has, where the registry has none of its own.
    ca: settings.schemaRegistryCaFile
      ? pemFile("SCHEMA_REGISTRY_SSL_CA_FILE", settings.schemaRegistryCaFile)
      : pemFile("KAFKA_SSL_CA_FILE", settings.sslCaFile),
  };
}

/** A client for the registry at `options.url`, and that URL without credentials (for messages). */
export function registryClient(options: RegistryOptions): { client: Client; url: string } {
  // Credentials written into the URL become basic auth: the URL, in logs and DLQ records, carries none.
  const parsed = new URL(options.url);
  const username = options.username ?? (parsed.username ? decodeURIComponent(parsed.username) : undefined);
  const password = options.password ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined);
  registerSecret(password);
  parsed.username = parsed.password = "";
  const url = parsed.href.replace(/\/+$/, "");
  const client = new SchemaRegistryClient({
    baseURLs: [url],
    ...(username !== undefined
      ? { basicAuthCredentials: { credentialsSource: "USER_INFO", userInfo: `${username}:${password ?? ""}` } }
      : {}),
    createAxiosDefaults: {
      // A registry that takes the connection and never answers is one that cannot answer (axios waits for ever).
      timeout: 10_000,
      // A connection each request: a kept-alive one that the registry closed has hung axios on Deno for good.
      httpAgent: new http.Agent({ keepAlive: false }),
      // A CA given is trusted beside the system's: setting `ca` alone would replace them, and a registry
      // with a public certificate would stop being trusted because Kafka's private CA was shared.
      httpsAgent: new https.Agent({
        keepAlive: false,
        ...(options.ca ? { ca: [...tls.rootCertificates, options.ca] } : {}),
      }),
      // The library's own bearer option is Confluent Cloud's (it wants a logical cluster): a header instead.
      ...(options.token ? { headers: { Authorization: `Bearer ${options.token}` } } : {}),
    },
    // The bridge retries a record itself, with the pipeline paused: one quick retry here.
    maxRetries: 1,
    retriesWaitMs: 200,
    retriesMaxWaitMs: 1_000,
  });
  return { client, url };
}

/** Whether `error` is the registry's "schema not found" (HTTP 404, error code 40403). */
export function schemaNotFound(error: unknown): boolean {
  return error instanceof RestError && error.status === 404 && error.errorCode === 40403;
}

/**
 * The registry's failure to answer, classed: unreachable, 5xx, 408/429, refused credentials, or a
 * URL with no registry API; undefined for an answer (a 4xx about the request itself).
 */
export function unavailable(error: unknown): RegistryUnavailable | undefined {
  const status = error instanceof RestError
    ? error.status
    : (error as { response?: { status?: number } })?.response?.status;
  if (status === 401 || status === 403) {
    return new RegistryUnavailable(`the registry refuses the credentials (HTTP ${status})`, "refused");
  }
  if (status === 404 && !schemaNotFound(error)) {
    return new RegistryUnavailable(
      "the URL serves no Confluent-compatible registry API (HTTP 404; Apicurio's is at /apis/ccompat/v7)",
      "misconfigured",
    );
  }
  if (status !== undefined && (status >= 500 || status === 408 || status === 429)) {
    return new RegistryUnavailable(`the registry cannot answer: ${errorMessage(error)}`);
  }
  const code = (error as { code?: string })?.code ?? "";
  if (status === undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) {
    return new RegistryUnavailable(
      `the registry's TLS certificate is not trusted: ${errorMessage(error)}`,
      "untrusted",
    );
  }
  // No answer at all (refused, reset, timed out, DNS, TLS): only HTTP client errors, not a deserializer's own.
  if (status === undefined && (error as { name?: string; isAxiosError?: boolean })?.isAxiosError) {
    return new RegistryUnavailable(`the registry cannot be reached: ${errorMessage(error)}`);
  }
  return undefined;
}
