/**
 * The real Archestra backend (../shared/archestra-real: Archestra's own server built from its source,
 * with a fake LLM behind it), as a fixture for tests of what users meet. `.ci/run` starts it; where
 * it is not there (a user's clone) or not running, {@link archestraReal} says why, and its tests are
 * skipped with that one line.
 *
 * Set up here, through Archestra's own REST API: a fourth agent whose LLM provider fails every call
 * (its own provider key, answered 401: a revoked key), beside the three the fixture creates. The
 * fake LLM is restarted through the fixture's own `start.sh` to rate-limit each request's first call.
 */
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("../../../shared/archestra-real/", import.meta.url));
/** Where the fixture lives: ARCHESTRA_REAL_DIR, else ../shared/archestra-real beside the repository. */
export const FIXTURE_DIR = Deno.env.get("ARCHESTRA_REAL_DIR") ?? here;
const RUN = `${Deno.env.get("ARCHESTRA_SRC") ?? "/var/tmp/archestra-real"}/.run`;

export interface ArchestraReal {
  url: string;
  token: string;
  agents: { customerSupport: string; orderProcessing: string; analytics: string };
  /** The file whose presence makes the fake LLM answer 429 to every call. */
  failFile: string;
  /** The fake LLM's base URL (`…/v1`). */
  llmUrl: string;
}

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(
    text.split("\n").flatMap((line) => {
      const at = line.indexOf("=");
      return at > 0 ? [[line.slice(0, at).trim(), line.slice(at + 1).trim()]] : [];
    }),
  );
}

/** The running backend, or why there is none (one line, for the skip message). */
export async function archestraReal(): Promise<ArchestraReal | { skip: string }> {
  try {
    Deno.statSync(`${FIXTURE_DIR}start.sh`);
  } catch {
    return { skip: `no ${FIXTURE_DIR}start.sh here (a clone without the shared fixtures)` };
  }
  let env: Record<string, string>;
  try {
    env = parseEnv(await Deno.readTextFile(`${RUN}/archestra.env`));
  } catch {
    return { skip: `not started: no ${RUN}/archestra.env (run ${FIXTURE_DIR}start.sh)` };
  }
  try {
    const health = await fetch(`${env.ARCHESTRA_URL}/health`, { signal: AbortSignal.timeout(5_000) });
    await health.body?.cancel();
    if (!health.ok) return { skip: `not healthy at ${env.ARCHESTRA_URL} (HTTP ${health.status})` };
  } catch (error) {
    return { skip: `not running at ${env.ARCHESTRA_URL}: ${(error as Error).message}` };
  }
  return {
    url: env.ARCHESTRA_URL,
    token: env.ARCHESTRA_TOKEN,
    agents: {
      customerSupport: env.CUSTOMER_SUPPORT_AGENT_ID,
      orderProcessing: env.ORDER_PROCESSING_AGENT_ID,
      analytics: env.ANALYTICS_AGENT_ID,
    },
    failFile: env.FAKE_LLM_FAIL_FILE,
    llmUrl: env.FAKE_LLM_URL,
  };
}

/** How many calls the fake LLM has answered so far, refused ones included. */
export async function fakeLlmCalls(archestra: ArchestraReal): Promise<number> {
  const health = await fetch(new URL("/health", archestra.llmUrl));
  return (await health.json()).calls;
}

/** A session on Archestra's REST API as the fixture's admin. */
async function signIn(url: string): Promise<(path: string, body?: unknown) => Promise<unknown>> {
  const origin = "http://localhost:13000";
  const response = await fetch(`${url}/api/auth/sign-in/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin },
    body: JSON.stringify({ email: "admin@example.com", password: "password" }),
  });
  await response.body?.cancel();
  if (!response.ok) throw new Error(`sign-in to ${url}: HTTP ${response.status}`);
  const cookie = response.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  return async (path, body) => {
    const answer = await fetch(`${url}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { cookie, origin, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await answer.text();
    if (!answer.ok) throw new Error(`${path}: HTTP ${answer.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text);
  };
}

const FAILING_AGENT = "Failing Provider Agent";

/**
 * The id of an agent whose LLM provider refuses every call at once (`-32603` "Unauthenticated"), the
 * way a revoked provider key does; created on first use. Its provider key is the admin's own
 * (`personal`), so the org token's calls to the other agents keep the fake LLM.
 */
export async function failingAgent(archestra: ArchestraReal): Promise<string> {
  const api = await signIn(archestra.url);
  type Agent = { id: string; name: string; agentType: string };
  const agents = await api("/api/agents?limit=100&agentType=agent") as { data?: Agent[] };
  const known = agents.data?.find((agent) => agent.name === FAILING_AGENT);
  if (known) return known.id;
  // Perplexity's keys are checked against a built-in model list, so any base URL is accepted: this
  // one is Archestra's own API, which answers the provider's calls 401.
  const key = await api("/api/llm-provider-api-keys", {
    name: "Revoked provider key",
    provider: "perplexity",
    apiKey: "pplx-revoked",
    baseUrl: `${archestra.url}/api`,
    scope: "personal",
  }) as { id: string };
  type Model = { id: string; modelId: string; apiKeys: { id: string }[] };
  const models = await api("/api/llm-models") as Model[];
  const model = models.find((m) => m.apiKeys.some((k) => k.id === key.id));
  if (!model) throw new Error("no model for the revoked provider key");
  const created = await api("/api/agents", {
    name: FAILING_AGENT,
    agentType: "agent",
    scope: "org",
    teams: [],
    description: "Its LLM provider refuses every call.",
    systemPrompt: "You are an agent.",
    modelId: model.id,
    llmApiKeyId: key.id,
  }) as { id: string };
  return created.id;
}

async function runStart(env: Record<string, string>): Promise<void> {
  const { code, stderr } = await new Deno.Command("bash", {
    args: [`${FIXTURE_DIR}start.sh`],
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`start.sh failed: ${new TextDecoder().decode(stderr).slice(-1_000)}`);
}

async function stopFakeLlm(): Promise<void> {
  const pid = Number((await Deno.readTextFile(`${RUN}/fake-llm.pid`)).trim());
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return; // gone already
  }
  // Until the port is free: start.sh starts a new one only once this one no longer answers.
  for (let n = 0; n < 100; n++) {
    try {
      Deno.kill(pid, "SIGCONT");
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`fake LLM ${pid} did not stop`);
}

/**
 * Runs `body` with the fake LLM restarted as `FAKE_LLM_FAIL_FIRST=failFirst` (each distinct request's
 * first `failFirst` provider calls answer 429: with 9, a request's first A2A call answers `-32603`
 * after Archestra's own retries, and its next succeeds); restarts it plain afterwards.
 */
export async function withFailFirst<T>(failFirst: number, body: () => Promise<T>): Promise<T> {
  await stopFakeLlm();
  await runStart({ FAKE_LLM_FAIL_FIRST: String(failFirst) });
  try {
    return await body();
  } finally {
    await stopFakeLlm();
    await runStart({ FAKE_LLM_FAIL_FIRST: "0" });
  }
}
