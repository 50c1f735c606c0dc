/**
 * Builds the kafkajs client from settings: brokers, TLS and SASL, and kafkajs' own log lines
 * routed into ours. The SASL password goes to kafkajs only, never into a log line.
 */
import process from "node:process";
import { getLogger } from "@logtape/logtape";
import { Kafka, logLevel, type SASLOptions } from "kafkajs";
import type { Settings } from "../config/settings.ts";

const kafkaLog = getLogger(["agentstream", "kafkajs"]);

// kafkajs arms a throttle timer with a negative delay (harmless: it fires at once), and the
// runtime warns about it on every connection. Drop that one warning, keep all others.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const name = typeof warning === "string" ? rest[0] : warning.name;
  if (name === "TimeoutNegativeWarning" || String(warning).includes("is a negative number")) return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

/** A kafkajs client for these settings. */
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
    ssl: settings.securityProtocol.endsWith("SSL"),
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
