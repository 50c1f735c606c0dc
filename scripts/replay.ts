/**
 * `deno task replay --from <topic>.dlq [filters] [--dry-run]`: re-publishes dead-lettered records
 * to their source topics once the cause is fixed (see src/replay.ts). Connects to
 * KAFKA_BOOTSTRAP_SERVERS (with the same security settings as the bridge), or the local broker.
 *
 *   --stage S      only failures of stage S (decode, match, transform, invoke, publish); repeatable
 *   --class C      only failure class C (permanent, exhausted, timeout, input-required, auth-required, loop); repeatable
 *   --pipeline P   only pipeline P; repeatable
 *   --since T      only records dead-lettered at or after T: an ISO time, or a duration ago (2h)
 *   --until T      only records dead-lettered before T
 *   --max-replays N  leave records already replayed N times in the DLQ (default 3)
 *   --dry-run      count what would be replayed; publish nothing
 */
import { parseArgs } from "node:util";
import { readDotEnv } from "../src/config/dotenv.ts";
import { loadSettings } from "../src/config/settings.ts";
import { DEAD_LETTER_CLASSES, errorMessage, FatalError, runCommand } from "../src/errors.ts";
import { ensureLocalBroker } from "../src/infra/local_broker.ts";
import { createKafka } from "../src/kafka/client.ts";
import { type ReplayCounts, replayDlq } from "../src/replay.ts";
import { parseDuration } from "../src/util/duration.ts";

const STAGES = ["decode", "match", "transform", "invoke", "publish"];
const CLASSES = DEAD_LETTER_CLASSES;

function time(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ago = parseDuration(value);
  if (ago !== undefined) return Date.now() - ago;
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new FatalError(`--${flag}: "${value}" is neither an ISO time nor a duration (2h)`);
  return at;
}

function oneOf(flag: string, values: string[] | undefined, allowed: readonly string[]): string[] | undefined {
  for (const value of values ?? []) {
    if (!allowed.includes(value)) throw new FatalError(`--${flag}: "${value}" is not one of ${allowed.join(", ")}`);
  }
  return values;
}

/** One progress line: rewritten in place on a terminal, else printed every few seconds. */
function progressReporter(dryRun: boolean): { update(counts: Readonly<ReplayCounts>): void; end(): void } {
  const terminal = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  let last = 0;
  let shown = false;
  const line = (c: Readonly<ReplayCounts>) => {
    const width = 24;
    const filled = c.total ? Math.min(width, Math.round((c.read / c.total) * width)) : width;
    return `replay [${"#".repeat(filled)}${".".repeat(width - filled)}] ${c.read}/${c.total} read, ` +
      `${c.replayed} ${dryRun ? "to replay" : "replayed"}`;
  };
  return {
    update(counts) {
      const now = Date.now();
      if (now - last < (terminal ? 100 : 5_000)) return;
      last = now;
      shown = true;
      if (terminal) Deno.stderr.writeSync(encoder.encode(`\r${line(counts)}`));
      else console.error(line(counts));
    },
    end() {
      if (terminal && shown) Deno.stderr.writeSync(encoder.encode("\n"));
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      from: { type: "string" },
      stage: { type: "string", multiple: true },
      class: { type: "string", multiple: true },
      pipeline: { type: "string", multiple: true },
      since: { type: "string" },
      until: { type: "string" },
      "max-replays": { type: "string", default: "3" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  if (!values.from) throw new FatalError("--from: give the DLQ topic to replay, e.g. --from orders.events.dlq");
  const maxReplays = Number(values["max-replays"]);
  if (!Number.isInteger(maxReplays) || maxReplays < 1) {
    throw new FatalError(`--max-replays: "${values["max-replays"]}" is not a whole number of at least 1`);
  }
  const filter = {
    stages: oneOf("stage", values.stage, STAGES),
    classes: oneOf("class", values.class, CLASSES),
    pipelines: values.pipeline,
    sinceMs: time("since", values.since),
    untilMs: time("until", values.until),
    maxReplays,
  };
  const dryRun = values["dry-run"];
  const settings = loadSettings({ ...await readDotEnv(".env"), ...Deno.env.toObject() });
  const brokers = settings.bootstrapServers ??
    [(await ensureLocalBroker({ log: (line) => console.error(`kafka: ${line}`) })).bootstrap];
  const progress = progressReporter(dryRun);
  const startedAt = new Date().toISOString();
  let counts: ReplayCounts;
  try {
    counts = await replayDlq({
      kafka: createKafka(settings, brokers),
      from: values.from,
      filter,
      dryRun,
      progress: progress.update,
    });
  } catch (error) {
    throw new FatalError(`replay from ${values.from} at ${brokers.join(",")} failed: ${errorMessage(error)}`);
  } finally {
    progress.end();
  }
  const topics = Object.entries(counts.byTopic).map(([topic, n]) => `${topic}: ${n}`).join(", ");
  console.log(
    `replay: read ${counts.read} from ${values.from}; ${dryRun ? "would replay" : "replayed"} ${counts.replayed}` +
      (topics ? ` (${topics})` : "") +
      `; left ${counts.filtered} filtered out, ${counts.atMaxReplays} at --max-replays ${maxReplays}, ` +
      `${counts.noSource} without x-source-topic`,
  );
  if (!dryRun && counts.replayed) console.log(`replay: to replay only newer failures next time: --since ${startedAt}`);
}

await runCommand(main);
