/**
 * @module
 * What the local broker and the local registry both need to run a server beside the bridge: a
 * free port, whether one is taken, whether a process still lives, whether a file exists, and a
 * command run to its end (mvn, tar, java).
 *
 * @example
 * ```ts
 * import { freePort, portIsFree, processAlive } from "./local_process.ts";
 * const port = freePort();
 * if (!portIsFree(port)) throw new Error("a port just freed is free");
 * if (!processAlive(Deno.pid)) throw new Error("this process lives");
 * ```
 */
import { FatalError } from "../errors.ts";

/** How a local server is started, whichever it is. */
export interface LocalServerOptions {
  /** Holds its state file, log and data. */
  stateDir?: string;
  /** The port to prefer; 0 picks a free one. */
  port?: number;
  /** Progress lines. */
  log?: (line: string) => void;
  /**
   * Stop it when this process exits, however it exits (a killed test run must not leave one
   * behind). Default: it outlives this process until stopped.
   */
  tethered?: boolean;
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** A port free on 127.0.0.1 now. */
/** The JSON state a local server's start wrote to `path`; undefined where there is none (or it is unreadable). */
export async function readState<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Whether nothing listens on `port` of 127.0.0.1. */
export function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** Whether the process `pid` still lives (a signal that does nothing reaches it). */
export function processAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `command` to its end and returns what it printed; a FatalError naming `what` when it is not
 * installed or fails (with the last lines it printed). Long runs say so every 15 s through `log`.
 */
export async function run(
  command: string,
  args: string[],
  what: string,
  log: (line: string) => void = () => {},
): Promise<string> {
  const started = Date.now();
  const ticker = setInterval(
    () => log(`${what}: still at it (${Math.round((Date.now() - started) / 1000)} s)…`),
    15_000,
  );
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new FatalError(`${what}: '${command}' is not installed; install it (see README: Troubleshooting)`);
    }
    throw error;
  } finally {
    clearInterval(ticker);
  }
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success) throw new FatalError(`${what} failed:\n${text.trim().split("\n").slice(-20).join("\n")}`);
  return text;
}

/**
 * Starts `command` in a session of its own (setsid: Ctrl-C in the terminal that started it does not
 * stop it), its output appended to `logFile`, and leaves it running. `tethered`: a watcher shell
 * stops it once this process is gone (checked every second). `exited()` says whether it has ended.
 */
export function spawnDetached(
  command: readonly string[],
  options: { logFile: string; tethered?: boolean; cwd?: string; env?: Record<string, string> },
): { pid: number; exited: () => boolean } {
  const quoted = command.map((arg) => `'${arg}'`).join(" ");
  const redirect = `>>'${options.logFile}' 2>&1`;
  const script = options.tethered
    ? `${quoted} ${redirect} & j=$!; trap 'kill $j; wait $j; exit' TERM INT; ` +
      `while kill -0 ${Deno.pid} 2>/dev/null && kill -0 $j 2>/dev/null; do sleep 1; done; kill $j 2>/dev/null; wait $j`
    : `exec ${quoted} ${redirect}`;
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", script],
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  let exited = false;
  child.status.then(() => exited = true);
  return { pid: child.pid, exited: () => exited };
}
