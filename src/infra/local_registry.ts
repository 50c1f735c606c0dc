/**
 * @module
 * A Confluent-compatible schema registry on the loopback interface, for development and the tests,
 * with no Docker engine: **Apicurio Registry 3.3.3**, whose Quarkus fast-jar
 * (`io.apicurio:apicurio-registry-app:3.3.3`, classifier `all`, type `tar.gz`, about 150 MB) comes
 * from Maven Central through `mvn` once and is unpacked under the user's cache directory (beside
 * the local broker's jars). It keeps its data in memory, so a restart starts empty.
 *
 * It needs Java 21 or newer (Java 17, enough for the local broker, refuses it): `JAVA_HOME` when it
 * is 21+, else the newest 21+ under `/usr/lib/jvm`, else `java` on the `PATH` when it is 21+.
 *
 * The URL it gives is the Confluent-compatible API's base (`…/apis/ccompat/v7`): what a Confluent
 * client calls its schema registry URL (`<url>/subjects`, `<url>/schemas/ids/<id>`).
 *
 * @example
 * ```ts
 * import { ensureLocalRegistry, javaMajor } from "./local_registry.ts";
 * // What `deno task registry:start` does (not run here: it takes seconds, and a Java 21+):
 * async function start() {
 *   const registry = await ensureLocalRegistry({ log: console.error });
 *   console.log(registry.url); // http://127.0.0.1:8081/apis/ccompat/v7
 * }
 * // How a JDK's version is read:
 * if (javaMajor('openjdk version "25.0.3" 2026-04-21 LTS') !== 25) throw new Error("misread");
 * if (javaMajor('java version "1.8.0_402"') !== 8) throw new Error("misread");
 * void start;
 * ```
 */
import { FatalError } from "../errors.ts";
import { cacheDir } from "./local_broker.ts";
import {
  exists,
  freePort,
  type LocalServerOptions,
  portIsFree,
  processAlive,
  readState,
  run,
  spawnDetached,
} from "./local_process.ts";

export const REGISTRY_VERSION = "3.3.3";
const ARTIFACT = `io.apicurio:apicurio-registry-app:${REGISTRY_VERSION}:tar.gz:all`;
/** The path of the Confluent-compatible API under the server's root. */
export const CCOMPAT_PATH = "/apis/ccompat/v7";
/** Confluent's usual port; free of the project's own (Kafka 9092, metrics 9464, the demo agent 9000). */
export const DEFAULT_REGISTRY_PORT = 8081;
const MINIMUM_JAVA = 21;

/** The default registry's state directory, shared by `deno task registry:start|stop|status`. */
export function defaultRegistryStateDir(): string {
  return `${cacheDir()}/registry`;
}

interface RegistryState {
  pid: number;
  host: string;
  port: number;
  version: string;
  java: string;
}

export interface LocalRegistry {
  /** The Confluent-compatible API's base URL, e.g. `http://127.0.0.1:8081/apis/ccompat/v7`. */
  readonly url: string;
  /** Whether this call started it (and so should stop it). */
  readonly started: boolean;
  /** Stops the registry if this call started it. */
  stop(): Promise<void>;
}

/** {@link LocalServerOptions}; the port defaults to {@link DEFAULT_REGISTRY_PORT}. */
export interface EnsureRegistryOptions extends LocalServerOptions {
  /** How long to wait for it to answer. Default 120 s. */
  startTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Confluent-compatible base URL of a registry on `host:port`. */
function ccompatUrl(host: string, port: number): string {
  return `http://${host}:${port}${CCOMPAT_PATH}`;
}

/**
 * Whether a schema registry answers at `url` (a Confluent-compatible base): `GET <url>/subjects`
 * gives 200 and a JSON array. Any other HTTP server fails this.
 */
export async function isSchemaRegistry(url: string, timeoutMs = 2_000): Promise<boolean> {
  try {
    const response = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(timeoutMs) });
    if (response.status !== 200) {
      await response.body?.cancel();
      return false;
    }
    return Array.isArray(await response.json());
  } catch {
    return false;
  }
}

/**
 * Fetches Apicurio Registry's fast-jar with `mvn` and unpacks it, unless cached; returns the
 * directory holding `quarkus-run.jar`.
 */
export async function fetchRegistry(log: (line: string) => void = () => {}): Promise<string> {
  const home = `${cacheDir()}/apicurio-registry-${REGISTRY_VERSION}`;
  const app = `${home}/app`;
  if (await exists(`${app}/quarkus-run.jar`)) return app;
  log(
    `fetching Apicurio Registry ${REGISTRY_VERSION} from Maven Central with mvn (first run only, about 150 MB)…`,
  );
  await Deno.mkdir(home, { recursive: true });
  const staging = `${home}/app.${Deno.pid}`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  try {
    await run(
      "mvn",
      [
        "-B",
        "-q",
        "dependency:copy",
        `-Dartifact=${ARTIFACT}`,
        `-DoutputDirectory=${staging}`,
      ],
      "fetching Apicurio Registry with mvn",
      log,
    );
    const archive = `${staging}/apicurio-registry-app-${REGISTRY_VERSION}-all.tar.gz`;
    log(`unpacking ${archive}`);
    await run("tar", ["-xzf", archive, "-C", staging], "unpacking Apicurio Registry", log);
    await Deno.remove(archive);
    if (!await exists(`${staging}/quarkus-run.jar`)) {
      throw new FatalError(`the Apicurio Registry archive holds no quarkus-run.jar; remove ${home} and start again`);
    }
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
  try {
    await Deno.rename(staging, app);
  } catch {
    // Another process got there first; its copy is as good as ours.
    await Deno.remove(staging, { recursive: true });
  }
  log(`Apicurio Registry ${REGISTRY_VERSION} cached in ${app}`);
  return app;
}

/** The major version a `java -version` output names (`"25.0.3"` → 25, `"1.8.0_402"` → 8), or 0. */
export function javaMajor(versionOutput: string): number {
  const match = /version "(\d+)(?:\.(\d+))?/.exec(versionOutput);
  if (!match) return 0;
  const first = Number(match[1]);
  return first === 1 ? Number(match[2] ?? 0) : first;
}

async function javaVersion(java: string): Promise<number> {
  try {
    const output = await new Deno.Command(java, { args: ["-version"], stdout: "piped", stderr: "piped" }).output();
    if (!output.success) return 0;
    return javaMajor(new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout));
  } catch {
    return 0;
  }
}

/**
 * A Java runtime of version 21 or newer: `$JAVA_HOME/bin/java` when it is one, else the newest under
 * `/usr/lib/jvm/<name>/bin/java`, else `java` on the `PATH` when it is one.
 */
export async function findJava(minimum = MINIMUM_JAVA): Promise<{ java: string; major: number }> {
  const javaHome = Deno.env.get("JAVA_HOME");
  if (javaHome) {
    const java = `${javaHome}/bin/java`;
    const major = await javaVersion(java);
    if (major >= minimum) return { java, major };
  }
  const found: { java: string; major: number }[] = [];
  const seen = new Set<string>();
  try {
    for await (const entry of Deno.readDir("/usr/lib/jvm")) {
      const java = `/usr/lib/jvm/${entry.name}/bin/java`;
      const real = await Deno.realPath(java).catch(() => undefined);
      if (!real || seen.has(real)) continue;
      seen.add(real);
      const major = await javaVersion(java);
      if (major >= minimum) found.push({ java, major });
    }
  } catch { /* no /usr/lib/jvm */ }
  found.sort((a, b) => b.major - a.major || a.java.localeCompare(b.java));
  if (found.length) return found[0];
  const major = await javaVersion("java");
  if (major >= minimum) return { java: "java", major };
  throw new FatalError(
    `Apicurio Registry ${REGISTRY_VERSION} needs Java ${minimum} or newer and none was found ` +
      `(looked in JAVA_HOME, /usr/lib/jvm and the PATH): install one, or set JAVA_HOME to one`,
  );
}

const stateOf = (stateDir: string) => readState<RegistryState>(`${stateDir}/registry.json`);

/** The URL of the registry recorded in `stateDir`, if it is running and answering. */
export async function runningRegistry(stateDir = defaultRegistryStateDir()): Promise<string | undefined> {
  const state = await stateOf(stateDir);
  if (!state || !processAlive(state.pid)) return undefined;
  const url = ccompatUrl(state.host, state.port);
  return await isSchemaRegistry(url) ? url : undefined;
}

/**
 * Returns a registry: the one recorded in `stateDir` if it runs, the one answering on the preferred
 * port if there is one, else a new one started in the background (it outlives this process until
 * {@link stopLocalRegistry}, unless `tethered`).
 */
export async function ensureLocalRegistry(options: EnsureRegistryOptions = {}): Promise<LocalRegistry> {
  const stateDir = options.stateDir ?? defaultRegistryStateDir();
  const log = options.log ?? (() => {});
  const preferred = options.port ?? DEFAULT_REGISTRY_PORT;
  const reuse = (url: string): LocalRegistry => ({ url, started: false, stop: () => Promise.resolve() });

  const recorded = await runningRegistry(stateDir);
  if (recorded) return reuse(recorded);
  if (preferred && await isSchemaRegistry(ccompatUrl("127.0.0.1", preferred))) {
    return reuse(ccompatUrl("127.0.0.1", preferred));
  }

  const { java, major } = await findJava();
  const app = await fetchRegistry(log);
  await Deno.mkdir(stateDir, { recursive: true });
  const previous = await stateOf(stateDir);
  const wanted = previous?.port ?? preferred;
  const port = wanted && portIsFree(wanted) ? wanted : freePort();
  if (wanted && port !== wanted) log(`port ${wanted} is taken by something that is not a schema registry`);

  const logFile = `${stateDir}/registry.log`;
  log(`starting Apicurio Registry ${REGISTRY_VERSION} on 127.0.0.1:${port} with Java ${major} (log: ${logFile})`);
  const command = [java, "-Xms128m", "-Xmx512m", "-XX:TieredStopAtLevel=1", "-jar", `${app}/quarkus-run.jar`];
  const child = spawnDetached(command, {
    logFile,
    tethered: options.tethered,
    cwd: stateDir,
    env: {
      QUARKUS_HTTP_HOST: "127.0.0.1",
      QUARKUS_HTTP_PORT: String(port),
      // Quarkus's management interface defaults to 0.0.0.0:9000, the demo agent's port (and a
      // second registry's): a free port on the loopback instead.
      QUARKUS_MANAGEMENT_HOST: "127.0.0.1",
      QUARKUS_MANAGEMENT_PORT: "0",
    },
  });
  const state: RegistryState = { pid: child.pid, host: "127.0.0.1", port, version: REGISTRY_VERSION, java };
  // Written before it answers, so that `registry:stop` finds one that is still starting.
  await Deno.writeTextFile(`${stateDir}/registry.json`, JSON.stringify(state, null, 2));

  const url = ccompatUrl("127.0.0.1", port);
  const started = Date.now();
  const deadline = started + (options.startTimeoutMs ?? 120_000);
  let nextNote = started + 15_000;
  while (!await isSchemaRegistry(url, 1_000)) {
    if (child.exited() || Date.now() > deadline) {
      if (!child.exited()) await stopLocalRegistry(stateDir);
      const tail = await Deno.readTextFile(logFile).catch(() => "");
      throw new FatalError([
        `Apicurio Registry ${
          child.exited() ? "exited before it answered" : "did not answer in time"
        } on 127.0.0.1:${port}; ` +
        `last lines of ${logFile}:`,
        ...tail.trim().split("\n").slice(-15),
      ]);
    }
    if (Date.now() > nextNote) {
      log(`waiting for the registry to answer (${Math.round((Date.now() - started) / 1000)} s)…`);
      nextNote += 15_000;
    }
    await sleep(250);
  }
  log(`Apicurio Registry is up at ${url} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return { url, started: true, stop: async () => void await stopLocalRegistry(stateDir) };
}

/**
 * A registry of its own for a test run: a fresh temporary directory, a free port, tethered to this
 * process; `stop()` also removes its directory.
 */
export async function throwawayRegistry(log?: (line: string) => void): Promise<LocalRegistry> {
  const stateDir = await Deno.makeTempDir({ prefix: "agentstream-registry-" });
  try {
    const registry = await ensureLocalRegistry({ stateDir, port: 0, log, tethered: true });
    return {
      ...registry,
      stop: async () => {
        await stopLocalRegistry(stateDir);
        await Deno.remove(stateDir, { recursive: true }).catch(() => {});
      },
    };
  } catch (error) {
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    throw error;
  }
}

/**
 * Stops the registry recorded in `stateDir`: SIGTERM, then SIGKILL after 30 s. Returns whether one
 * ran. The state file stays, so a later start takes the same port.
 */
export async function stopLocalRegistry(stateDir = defaultRegistryStateDir()): Promise<boolean> {
  const state = await stateOf(stateDir);
  if (!state || !processAlive(state.pid)) return false;
  Deno.kill(state.pid, "SIGTERM");
  const deadline = Date.now() + 30_000;
  while (processAlive(state.pid) && Date.now() < deadline) await sleep(200);
  if (processAlive(state.pid)) Deno.kill(state.pid, "SIGKILL");
  return true;
}
