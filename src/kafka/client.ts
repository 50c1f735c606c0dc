/**
 * @module
 * Builds the kafkajs client from settings: brokers, TLS and SASL, and kafkajs' own log lines
 * routed into ours. The SASL password goes to kafkajs only, never into a log line.
 */
import process from "node:process";
import { getLogger } from "@logtape/logtape";
import { Kafka, logLevel, type SASLOptions } from "kafkajs";
import type { ConnectionOptions } from "node:tls";
import type { Settings } from "../config/settings.ts";
import { FatalError } from "../errors.ts";
import { pemFile } from "../config/pem_file.ts";

const kafkaLog = getLogger(["agentstream", "kafkajs"]);

// kafkajs arms a throttle timer with a negative delay (harmless: it fires at once), and the
// runtime warns about it on every connection. Drop that one warning, keep all others.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const name = typeof warning === "string" ? rest[0] : warning.name;
  if (name === "TimeoutNegativeWarning" || String(warning).includes("is a negative number")) return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

/** kafkajs' TLS options: `false` for PLAINTEXT and SASL_PLAINTEXT. */
function tlsOptions(settings: Settings): boolean | ConnectionOptions {
  if (!settings.securityProtocol.endsWith("SSL")) return false;
  const ca = pemFile("KAFKA_SSL_CA_FILE", settings.sslCaFile);
  const cert = pemFile("KAFKA_SSL_CERT_FILE", settings.sslCertFile);
  const key = pemFile("KAFKA_SSL_KEY_FILE", settings.sslKeyFile);
  if ((cert === undefined) !== (key === undefined)) {
    throw new FatalError(
      "environment:KAFKA_SSL_CERT_FILE: set both KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE, or neither",
      {
        config: true,
      },
    );
  }
  if (ca === undefined && cert === undefined) return true;
  return { ...(ca ? { ca: [ca] } : {}), ...(cert ? { cert, key } : {}) };
}

/**
 * A kafkajs client for these settings. Throws a {@link FatalError} when a TLS file named by the
 * settings cannot be read.
 */
export function createKafka(settings: Settings, brokers: string[]): Kafka {
  const sasl = settings.securityProtocol.startsWith("SASL")
    ? {
      mechanism: settings.saslMechanism.toLowerCase(),
      username: settings.saslUsername ?? "",
      password: settings.saslPassword ?? "",
    } as SASLOptions
    : undefined;
  return new Kafka({
    clientId: settings.clientId,
    brokers,
    ssl: tlsOptions(settings),
    sasl,
    connectionTimeout: 5_000,
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) => {
      const { message, timestamp: _, logger: __, stack: ___, ...rest } = log;
      const properties = { namespace, ...rest };
      // kafkajs logs every error response and every refused connection it then retries at ERROR or
      // WARN, many per second while a broker restarts; failures that matter reach us as exceptions
      // and are logged once where they are handled, so these lines are debug detail.
      const retried = /^(Response |Connection error|Failed to connect to seed broker)/.test(message);
      if (level <= logLevel.WARN && !retried) kafkaLog.warn(message, properties);
      else kafkaLog.debug(message, properties);
    },
  });
}
