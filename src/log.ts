/**
 * @module
 * Logging setup: structured records through LogTape, as readable lines on a terminal and JSON lines
 * otherwise (`LOG_FORMAT` overrides), at the level `LOG_LEVEL` asks for, with secrets blanked out.
 *
 * @example
 * ```ts
 * import { setupLogging } from "./log.ts";
 * await setupLogging({ level: "info", format: "pretty" });
 * ```
 */
import {
  configure,
  getAnsiColorFormatter,
  getConsoleSink,
  getTextFormatter,
  jsonLinesFormatter,
  type LogLevel,
  type TextFormatter,
} from "@logtape/logtape";
import { redact } from "./secrets.ts";

export interface LogOptions {
  level: LogLevel;
  format?: "json" | "pretty";
}

/** Configures logging for the process; call once, before anything logs. */
export async function setupLogging(options: LogOptions): Promise<void> {
  const terminal = Deno.stdout.isTerminal();
  const format = options.format ?? (terminal ? "pretty" : "json");
  const base = format === "json"
    ? jsonLinesFormatter
    : terminal
    ? getAnsiColorFormatter({ timestamp: "time", category: "." })
    : getTextFormatter({ timestamp: "date-time", category: "." });
  // Secrets are blanked from the finished line, whichever field or value carried them.
  const formatter: TextFormatter = (record) => redact(base(record));
  await configure({
    reset: true,
    sinks: { console: getConsoleSink({ formatter }) },
    loggers: [
      { category: ["agentstream"], lowestLevel: options.level, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
}
