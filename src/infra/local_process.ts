/**
 * @module
 * What the local broker and the local registry both need to run a server beside the bridge: a
 * free port, whether one is taken, whether a process still lives, whether a file exists.
 *
 * @example
 * ```ts
 * import { freePort, portIsFree, processAlive } from "./local_process.ts";
 * const port = freePort();
 * if (!portIsFree(port)) throw new Error("a port just freed is free");
 * if (!processAlive(Deno.pid)) throw new Error("this process lives");
 * ```
 */

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
