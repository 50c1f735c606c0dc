/**
 * `deno task start` as a user runs it: src/main.ts as a subprocess in a scratch directory, configured
 * only through its environment (exactly `env`, plus PATH and HOME, JSON logs and a metrics port of
 * its own).
 */
import { fileURLToPath } from "node:url";
import { within } from "./until.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** One JSON log line of the bridge (LogTape's JSON lines format). */
export interface LogRecord {
  level: string;
  message: string;
  properties: Record<string, unknown>;
  [field: string]: unknown;
}

export interface MainProcess {
  readonly child: Deno.ChildProcess;
  readonly cwd: string;
  /** Settles when the process has exited and its output is read. */
  readonly output: Promise<{ code: number; stdout: string; stderr: string }>;
  /** The first log record (so far or to come) that `test` accepts; fails after `timeoutMs`. */
  waitForLog(test: (record: LogRecord) => boolean, what: string, timeoutMs?: number): Promise<LogRecord>;
}

/**
 * Starts the bridge. With `capture: false` its stdout is dropped and its stderr goes to the test's
 * (for long runs whose output nobody reads).
 */
export async function startMain(
  env: Record<string, string | undefined>,
  options: { capture?: boolean; args?: string[] } = {},
): Promise<MainProcess> {
  const capture = options.capture ?? true;
  const cwd = await Deno.makeTempDir({ prefix: "agentstream-main-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `--config=${root}deno.json`, `${root}src/main.ts`, ...options.args ?? []],
    cwd,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      LOG_FORMAT: "json",
      METRICS_PORT: "0",
      // With a test broker and no agent of the test's own, the demo agent answers: on purpose.
      ...(env.KAFKA_BOOTSTRAP_SERVERS && !("ARCHESTRA_URL" in env) ? { ARCHESTRA_URL: "demo" } : {}),
      ...Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined)),
    },
    stdin: "null",
    stdout: capture ? "piped" : "null",
    stderr: capture ? "piped" : "inherit",
  }).spawn();

  const records: LogRecord[] = [];
  const waiters: { test: (record: LogRecord) => boolean; resolve: (record: LogRecord) => void }[] = [];
  const onLine = (line: string) => {
    let record: LogRecord;
    try {
      record = JSON.parse(line);
    } catch {
      return; // not a log record (a stack trace, say): kept in stdout only
    }
    records.push(record);
    for (const waiter of waiters.filter((w) => w.test(record))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(record);
    }
  };
  const readAll = async (stream: ReadableStream<Uint8Array> | null, lines?: (line: string) => void) => {
    if (!stream) return "";
    let text = "";
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (!lines) continue;
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      parts.forEach(lines);
    }
    if (lines && partial) lines(partial);
    return text;
  };
  const output = capture
    // Log records come on both streams: the console sink writes warnings and errors to stderr.
    ? Promise.all([readAll(child.stdout, onLine), readAll(child.stderr, onLine), child.status])
      .then(([stdout, stderr, status]) => ({ code: status.code, stdout, stderr }))
    : child.status.then((status) => ({ code: status.code, stdout: "", stderr: "" }));

  return {
    child,
    cwd,
    output,
    waitForLog(test, what, timeoutMs = 60_000) {
      const seen = records.find(test);
      if (seen) return Promise.resolve(seen);
      const { promise, resolve } = Promise.withResolvers<LogRecord>();
      waiters.push({ test, resolve });
      const exited = output.then(({ code }) => {
        throw new Error(`the bridge exited (code ${code}) before logging ${what}`);
      });
      return within(Promise.race([promise, exited]), what, timeoutMs);
    },
  };
}

/** A fresh directory holding one pipeline file with this YAML: the PIPELINES_DIR of a bridge process. */
export async function pipelineDir(yaml: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "agentstream-pipelines-" });
  await Deno.writeTextFile(`${dir}/pipeline.yaml`, yaml);
  return dir;
}
