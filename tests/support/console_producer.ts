/**
 * Produces records with Kafka's own `kafka-console-producer` (`org.apache.kafka.tools.ConsoleProducer`,
 * Kafka {@link KAFKA_VERSION}), for records kafkajs cannot write, such as a header whose value is
 * null (kafkajs 2.2.4's record encoder throws on one), or records written by the Java client.
 *
 * It runs the JVM on the jars {@link fetchKafka} caches, plus `kafka-tools` (the tool itself, not
 * part of the broker's dependencies), which this module fetches with `mvn` into the same cache on
 * first use. ConsoleProducer needs only kafka-clients, kafka-server-common, kafka-tools-api and
 * jopt-simple from the broker's jars, so kafka-tools is fetched alone (its own dependencies pull
 * in connect-runtime, which it does not need).
 *
 * Its reader, `org.apache.kafka.tools.LineMessageReader`, takes one record per input line:
 * `headers <headers.delimiter> key <key.separator> value`, headers split by `headers.separator`, each
 * `name <headers.key.separator> value`; a key, value or header value equal to `null.marker` is null.
 * Those property names, and `--reader-property` (which replaced the deprecated `--property`), are
 * Kafka 4.4.0's (tools/src/main/java/org/apache/kafka/tools/LineMessageReader.java and
 * ConsoleProducer.java in apache/kafka). Lines are decoded as UTF-8, so keys and values are strings:
 * bytes that are not UTF-8 cannot be written this way.
 *
 * @example
 * ```ts ignore
 * await consoleProduce(await testBroker(), topic, [
 *   { key: null, value: "v", headers: [["trace", null], ["kind", "x"]] },
 * ]);
 * ```
 *
 * @module
 */
import { cacheDir, fetchKafka, KAFKA_VERSION } from "../../src/infra/local_broker.ts";

/** A record for {@link consoleProduce}. No field may contain a line break or the separators below. */
export interface ConsoleRecord {
  /** Absent or null: no key. */
  key?: string | null;
  /** null: a tombstone. */
  value: string | null;
  /** In order; a null value is a header whose value is null (the name cannot be null). */
  headers?: [string, string | null][];
}

// ASCII control characters that test data does not contain (checked anyway, see encode): tabs,
// commas and colons, the tool's defaults, do occur in JSON and text values. ASCII, because the JVM
// decodes its arguments in the locale's charset, which may be plain ASCII.
const HEADERS_DELIMITER = "\u001d"; // group separator: ends the headers
const KEY_SEPARATOR = "\u001c"; // file separator: ends the key
const HEADERS_SEPARATOR = "\u001e"; // record separator: between headers (a regex to the tool; a literal here)
const HEADER_KEY_SEPARATOR = "\u001f"; // unit separator: between a header's name and its value
const NULL_MARKER = "\u001a"; // substitute: the whole field is null

const READER_PROPERTIES = {
  "parse.headers": "true",
  "headers.delimiter": HEADERS_DELIMITER,
  "headers.separator": HEADERS_SEPARATOR,
  "headers.key.separator": HEADER_KEY_SEPARATOR,
  "parse.key": "true",
  "key.separator": KEY_SEPARATOR,
  "null.marker": NULL_MARKER,
};

/** What no field may contain: a line ends a record, and the tool does not escape separators. */
const RESERVED = [HEADERS_DELIMITER, KEY_SEPARATOR, HEADERS_SEPARATOR, HEADER_KEY_SEPARATOR, NULL_MARKER, "\r", "\n"];

function field(what: string, text: string | null | undefined): string {
  if (text === null || text === undefined) return NULL_MARKER;
  if (RESERVED.some((reserved) => text.includes(reserved))) {
    throw new Error(`consoleProduce: ${what} contains a line break or a reserved separator`);
  }
  return text;
}

/** One input line for LineMessageReader. */
function encode(record: ConsoleRecord): string {
  // No headers: the null marker (an empty field would be parsed as one header without a separator).
  const headers = record.headers?.length
    ? record.headers.map(([name, value]) =>
      field("a header name", name) + HEADER_KEY_SEPARATOR + field(`header ${name}`, value)
    ).join(HEADERS_SEPARATOR)
    : NULL_MARKER;
  return headers + HEADERS_DELIMITER + field("a key", record.key) + KEY_SEPARATOR + field("a value", record.value);
}

let toolsJar: Promise<string> | undefined;

/** `kafka-tools` alone (no dependencies), next to the broker's jars; fetched with `mvn` once. */
function fetchTools(): Promise<string> {
  toolsJar ??= (async () => {
    const dir = `${cacheDir()}/kafka-${KAFKA_VERSION}/tools`;
    const jar = `${dir}/kafka-tools-${KAFKA_VERSION}.jar`;
    try {
      await Deno.stat(jar);
      return jar;
    } catch { /* not cached yet */ }
    const staging = `${dir}.${Deno.pid}`;
    const output = await new Deno.Command("mvn", {
      args: [
        "-B",
        "-q",
        "dependency:copy",
        `-Dartifact=org.apache.kafka:kafka-tools:${KAFKA_VERSION}`,
        `-DoutputDirectory=${staging}`,
      ],
      stdin: "null",
    }).output();
    if (!output.success) {
      const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
      throw new Error(`fetching kafka-tools with mvn failed:\n${text.trim()}`);
    }
    try {
      await Deno.rename(staging, dir);
    } catch {
      // Another process got there first; its copy is as good as ours.
      await Deno.remove(staging, { recursive: true });
    }
    return jar;
  })();
  toolsJar.catch(() => toolsJar = undefined); // let a later call retry
  return toolsJar;
}

/**
 * Produces `records` to `topic` (in order, one at a time, each acknowledged by all in-sync replicas)
 * with kafka-console-producer; resolves when the tool exits 0, rejects with its output otherwise.
 * Each call starts a JVM: about a second, plus a few milliseconds a record.
 */
export async function consoleProduce(bootstrap: string, topic: string, records: ConsoleRecord[]): Promise<void> {
  const input = records.map((record) => encode(record) + "\n").join("");
  const classpath = `${await fetchKafka()}/*:${await fetchTools()}`;
  const child = new Deno.Command("java", {
    args: [
      "-XX:TieredStopAtLevel=1", // a short-lived JVM: skip the optimising compiler
      "-Xmx256m",
      "-cp",
      classpath,
      "org.apache.kafka.tools.ConsoleProducer",
      "--bootstrap-server",
      bootstrap,
      "--topic",
      topic,
      // Without --sync a failed send is only logged and the tool still exits 0.
      "--sync",
      // linger.ms, 1000 by default: with --sync every record would wait that long.
      "--timeout",
      "0",
      "--max-block-ms",
      "30000",
      ...Object.entries(READER_PROPERTIES).flatMap(([name, value]) => ["--reader-property", `${name}=${value}`]),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  // A JVM that failed at start closes stdin early: its output says why, so write errors are ignored.
  await writer.write(new TextEncoder().encode(input)).catch(() => {});
  await writer.close().catch(() => {});
  const output = await child.output();
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
    throw new Error(
      `kafka-console-producer exited with ${output.code}${output.signal ? ` (${output.signal})` : ""}:\n${text.trim()}`,
    );
  }
}
