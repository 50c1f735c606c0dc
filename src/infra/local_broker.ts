/**
 * @module
 * A single-node Apache Kafka (KRaft) on the loopback interface, for the demo and the tests, with no
 * Docker engine: the broker's jars come from Maven Central through `mvn` (cached under the user's
 * cache directory) and run on the machine's JDK (17 or newer).
 *
 * Kafka 4.4.0 is the newest release on Maven Central and kafkajs 2.2.4 works against it: kafkajs
 * negotiates API versions, and every version it needs is within Kafka 4's protocol baseline
 * (KIP-896); the integration tests prove it, transactions included.
 *
 * @example
 * ```ts
 * import { ensureLocalBroker } from "./local_broker.ts";
 * const broker = await ensureLocalBroker({ log: console.error });
 * console.log(broker.bootstrap); // 127.0.0.1:9092
 * if (broker.started) await broker.stop();
 * ```
 */
import { FatalError } from "../errors.ts";
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

export const KAFKA_VERSION = "4.4.0";
const LOG4J_VERSION = "2.25.5";

/** Where the jars and the default broker's data live: `$AGENTSTREAM_CACHE`, else `~/.cache/agentstream`. */
export function cacheDir(): string {
  const explicit = Deno.env.get("AGENTSTREAM_CACHE");
  if (explicit) return explicit;
  const base = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${base}/agentstream`;
}

/** The default broker's state directory, shared by `deno task kafka:start|stop` and `deno task start`. */
export function defaultStateDir(): string {
  return `${cacheDir()}/broker`;
}

interface BrokerState {
  pid: number;
  host: string;
  port: number;
  controllerPort: number;
  version: string;
  /** Ports of the secured listeners, when it has them. */
  secure?: Record<SecureListener, number>;
}

/** The secured listeners a broker started with {@link SecureOptions} has, besides PLAINTEXT. */
export type SecureListener = "SASL_PLAINTEXT" | "SSL" | "SASL_SSL";

/**
 * Secured listeners, for testing SASL and TLS: SASL_PLAINTEXT and SASL_SSL take PLAIN,
 * SCRAM-SHA-256 and SCRAM-SHA-512 for every user; SSL requires a client certificate signed by the CA.
 */
export interface SecureOptions {
  /** User names and passwords. */
  users: Record<string, string>;
  /** PEM files: the broker's private key (PKCS#8) with its certificate chain, and the CA it trusts. */
  tls: { keyAndChainFile: string; caFile: string };
  /**
   * Enforce ACLs (KRaft's StandardAuthorizer): users on the secured listeners may do only what an
   * ACL allows; PLAINTEXT clients (the broker itself, and a test's admin) are super users.
   */
  authorizer?: boolean;
  /** Whether the broker creates a topic on first use (default true, as Kafka's default). */
  autoCreateTopics?: boolean;
}

export interface LocalBroker {
  /** `host:port` to give kafkajs. */
  readonly bootstrap: string;
  /** Whether this call started it (and so should stop it). */
  readonly started: boolean;
  /** Where its state lives, when it is a local broker of ours (to restart it in a fault test). */
  readonly stateDir?: string;
  /** `host:port` of each secured listener, when it was started with {@link SecureOptions}. */
  readonly secure?: Readonly<Record<SecureListener, string>>;
  /** Stops the broker if this call started it. */
  stop(): Promise<void>;
}

/** {@link LocalServerOptions} (its state directory also holds the config and data); the port defaults to 9092. */
export interface EnsureOptions extends LocalServerOptions {
  /** Also open secured listeners (a new broker only: SCRAM users are set when storage is formatted). */
  secure?: SecureOptions;
}

/**
 * Whether a Kafka broker answers at `host:port`: sends an ApiVersions request and checks that the
 * reply carries its correlation id. Any TCP server that is not Kafka fails this.
 */
export async function isKafka(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => conn?.close(), timeoutMs);
  try {
    conn = await Deno.connect({ hostname: host, port });
    const clientId = new TextEncoder().encode("agentstream-probe");
    const request = new Uint8Array(4 + 2 + 2 + 4 + 2 + clientId.length);
    const view = new DataView(request.buffer);
    view.setInt32(0, request.length - 4);
    view.setInt16(4, 18); // ApiVersions
    view.setInt16(6, 0);
    view.setInt32(8, 0x5eed);
    view.setInt16(12, clientId.length);
    request.set(clientId, 14);
    await conn.write(request);
    const header = new Uint8Array(8);
    let read = 0;
    while (read < header.length) {
      const n = await conn.read(header.subarray(read));
      if (n === null) return false;
      read += n;
    }
    return new DataView(header.buffer).getInt32(4) === 0x5eed;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* already closed by the timer */ }
  }
}

/** Fetches Kafka's server jars with `mvn` unless cached; returns the directory holding them. */
export async function fetchKafka(log: (line: string) => void = () => {}): Promise<string> {
  const home = `${cacheDir()}/kafka-${KAFKA_VERSION}`;
  const libs = `${home}/libs`;
  if (await exists(`${libs}/kafka_2.13-${KAFKA_VERSION}.jar`)) return libs;
  log(`fetching Apache Kafka ${KAFKA_VERSION} from Maven Central with mvn (first run only, about 45 MB)…`);
  await Deno.mkdir(home, { recursive: true });
  const pom = `${home}/pom.xml`;
  await Deno.writeTextFile(
    pom,
    `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>agentstream</groupId><artifactId>local-kafka</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
`,
  );
  const staging = `${home}/libs.${Deno.pid}`;
  await run("mvn", [
    "-B",
    "-q",
    "-f",
    pom,
    "dependency:copy-dependencies",
    "-DincludeScope=runtime",
    `-DoutputDirectory=${staging}`,
  ], "fetching Kafka with mvn");
  try {
    await Deno.rename(staging, libs);
  } catch {
    // Another process got there first; its copy is as good as ours.
    await Deno.remove(staging, { recursive: true });
  }
  log(`Kafka ${KAFKA_VERSION} cached in ${libs}`);
  return libs;
}

async function checkJava(): Promise<void> {
  const text = await run("java", ["-version"], "checking the JDK");
  const major = Number(/version "(\d+)/.exec(text)?.[1] ?? "0");
  if (major < 17) throw new FatalError(`Kafka ${KAFKA_VERSION} needs Java 17 or newer; 'java -version' says ${major}`);
}

const stateOf = (stateDir: string) => readState<BrokerState>(`${stateDir}/broker.json`);

/** The broker recorded in `stateDir`, if it is running and answering. */
export async function runningBroker(stateDir = defaultStateDir()): Promise<string | undefined> {
  const state = await stateOf(stateDir);
  if (state && processAlive(state.pid) && await isKafka(state.host, state.port)) return `${state.host}:${state.port}`;
  return undefined;
}

/** Properties for the secured listeners: JAAS for SASL, PEM key and trust stores for TLS. */
function secureProperties(secure: SecureOptions): string {
  const plainUsers = Object.entries(secure.users).map(([name, password]) => `user_${name}="${password}"`).join(" ");
  const lines = ["sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"];
  for (const listener of ["sasl_plaintext", "sasl_ssl"]) {
    lines.push(
      `listener.name.${listener}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
      `listener.name.${listener}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
      `listener.name.${listener}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    );
  }
  lines.push(
    "ssl.keystore.type=PEM",
    `ssl.keystore.location=${secure.tls.keyAndChainFile}`,
    "ssl.truststore.type=PEM",
    `ssl.truststore.location=${secure.tls.caFile}`,
    "listener.name.ssl.ssl.client.auth=required",
  );
  return lines.join("\n") + "\n";
}

function serverProperties(
  stateDir: string,
  port: number,
  controllerPort: number,
  secure?: { options: SecureOptions; ports: Record<SecureListener, number> },
): string {
  const extra = secure ? Object.entries(secure.ports).map(([name, p]) => `,${name}://127.0.0.1:${p}`).join("") : "";
  const protocols = secure ? ",SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL" : "";
  return `# Written by agentstream's local broker; a single KRaft node for development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controllerPort}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}${extra}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}${extra}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${protocols}
${secure ? secureProperties(secure.options) : ""}log.dirs=${stateDir}/data
num.partitions=1
auto.create.topics.enable=${secure?.options.autoCreateTopics ?? true}
${
    secure?.options.authorizer
      ? "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\nsuper.users=User:ANONYMOUS\nallow.everyone.if.no.acl.found=false\n"
      : ""
  }offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`;
}

const LOG4J2 = `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
`;

/**
 * Returns a broker: the one recorded in `stateDir` if it runs, the one answering on the preferred
 * port if there is one, else a new one started in the background (it outlives this process until
 * {@link stopLocalBroker}).
 */
export async function ensureLocalBroker(options: EnsureOptions = {}): Promise<LocalBroker> {
  const stateDir = options.stateDir ?? defaultStateDir();
  const log = options.log ?? (() => {});
  const preferred = options.port ?? 9092;
  const reuse = (bootstrap: string): LocalBroker => ({ bootstrap, started: false, stop: () => Promise.resolve() });

  const recorded = await runningBroker(stateDir);
  if (recorded) return reuse(recorded);
  if (preferred && await isKafka("127.0.0.1", preferred)) return reuse(`127.0.0.1:${preferred}`);

  await checkJava();
  const libs = await fetchKafka(log);
  await Deno.mkdir(`${stateDir}/data`, { recursive: true });
  const previous = await stateOf(stateDir);
  const pick = (wanted: number | undefined) => wanted && portIsFree(wanted) ? wanted : freePort();
  const port = pick(previous?.port ?? preferred);
  const controllerPort = pick(previous?.controllerPort);
  const securePorts = options.secure
    ? {
      SASL_PLAINTEXT: pick(previous?.secure?.SASL_PLAINTEXT),
      SSL: pick(previous?.secure?.SSL),
      SASL_SSL: pick(previous?.secure?.SASL_SSL),
    }
    : undefined;
  await Deno.writeTextFile(
    `${stateDir}/server.properties`,
    serverProperties(
      stateDir,
      port,
      controllerPort,
      options.secure && { options: options.secure, ports: securePorts! },
    ),
  );
  await Deno.writeTextFile(`${stateDir}/log4j2.properties`, LOG4J2);
  const java = [
    "java",
    "-Xms256m",
    "-Xmx768m",
    "-XX:TieredStopAtLevel=1",
    `-Dlog4j2.configurationFile=${stateDir}/log4j2.properties`,
    "-cp",
    `${libs}/*`,
  ];

  if (!await exists(`${stateDir}/data/meta.properties`)) {
    log(`formatting broker storage in ${stateDir}/data`);
    await run(java[0], [
      ...java.slice(1),
      "kafka.tools.StorageTool",
      "format",
      "--ignore-formatted",
      "-t",
      crypto.randomUUID().replace(/-/g, "").slice(0, 22),
      "-c",
      `${stateDir}/server.properties`,
      // SCRAM credentials live in the cluster metadata: a new KRaft cluster gets them at format time.
      ...Object.entries(options.secure?.users ?? {}).flatMap(([name, password]) =>
        ["SCRAM-SHA-256", "SCRAM-SHA-512"].flatMap((mechanism) => [
          "--add-scram",
          `${mechanism}=[name=${name},password=${password}]`,
        ])
      ),
    ], "formatting Kafka storage");
  }

  log(`starting Kafka ${KAFKA_VERSION} on 127.0.0.1:${port} (log: ${stateDir}/broker.log)`);
  const command = [...java, "kafka.Kafka", `${stateDir}/server.properties`];
  const child = spawnDetached(command, { logFile: `${stateDir}/broker.log`, tethered: options.tethered });

  const deadline = Date.now() + 120_000;
  while (!await isKafka("127.0.0.1", port, 1_000)) {
    if (child.exited() || Date.now() > deadline) {
      const tail = await Deno.readTextFile(`${stateDir}/broker.log`).catch(() => "");
      throw new FatalError([
        `Kafka did not start on 127.0.0.1:${port}; last lines of ${stateDir}/broker.log:`,
        ...tail.trim().split("\n").slice(-15),
      ]);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const state: BrokerState = {
    pid: child.pid,
    host: "127.0.0.1",
    port,
    controllerPort,
    version: KAFKA_VERSION,
    secure: securePorts,
  };
  await Deno.writeTextFile(`${stateDir}/broker.json`, JSON.stringify(state, null, 2));
  log(`Kafka is up at 127.0.0.1:${port}`);
  return {
    bootstrap: `127.0.0.1:${port}`,
    started: true,
    stateDir,
    secure: securePorts &&
      {
        SASL_PLAINTEXT: `127.0.0.1:${securePorts.SASL_PLAINTEXT}`,
        SSL: `127.0.0.1:${securePorts.SSL}`,
        SASL_SSL: `127.0.0.1:${securePorts.SASL_SSL}`,
      },
    stop: async () => void await stopLocalBroker(stateDir),
  };
}

/**
 * A broker of its own for a test run or a benchmark: a fresh temporary directory, a free port,
 * tethered to this process; `stop()` also removes its data.
 */
export async function throwawayBroker(log?: (line: string) => void, secure?: SecureOptions): Promise<LocalBroker> {
  const stateDir = await Deno.makeTempDir({ prefix: "agentstream-broker-" });
  const broker = await ensureLocalBroker({ stateDir, port: 0, log, tethered: true, secure });
  return {
    ...broker,
    stop: async () => {
      await stopLocalBroker(stateDir);
      await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Stops the broker recorded in `stateDir`: SIGTERM, then SIGKILL after 30 s. Returns whether one
 * ran. The state file stays, so a later start takes the same ports (and clients find it again).
 */
export async function stopLocalBroker(stateDir = defaultStateDir()): Promise<boolean> {
  const state = await stateOf(stateDir);
  if (!state || !processAlive(state.pid)) return false;
  Deno.kill(state.pid, "SIGTERM");
  const deadline = Date.now() + 30_000;
  while (processAlive(state.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (processAlive(state.pid)) Deno.kill(state.pid, "SIGKILL");
  return true;
}
