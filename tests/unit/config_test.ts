import assert from "node:assert/strict";
import { loadPipelines, parsePipelineText, parseSeedRoutesText } from "../../src/config/load_pipelines.ts";
import { loadSettings } from "../../src/config/settings.ts";
import { agentEndpoint } from "../../src/a2a/endpoint.ts";
import { parseDotEnv } from "../../src/config/dotenv.ts";
import { expandVariables } from "../../src/config/expand.ts";
import { FatalError } from "../../src/errors.ts";

const defaults = { maxRetries: 3, retryDelayMs: 1000 };
const promptEnv = {
  CUSTOMER_SUPPORT_PROMPT_ID: "cs",
  ORDER_PROCESSING_PROMPT_ID: "op",
  ANALYTICS_PROMPT_ID: "an",
};

function problemsOf(yaml: string, env: Record<string, string> = {}): string[] {
  return parsePipelineText("pipelines/x.yaml", yaml, env, defaults).problems;
}

Deno.test("shipped pipelines and the seed's routes.json mean the same thing", async () => {
  const yaml = await loadPipelines({ dir: "pipelines" }, promptEnv, defaults);
  const seed = await loadPipelines({ routesFile: "config/routes.json", dir: "unused" }, promptEnv, defaults);
  const shape = (list: typeof yaml) =>
    // Examples are the pipeline files' own addition: the old format has none.
    list.map(({ file: _, examples: __, ...rest }) => rest).sort((a, b) => a.name.localeCompare(b.name));
  assert.deepEqual(shape(yaml), shape(seed));
  const byName = Object.fromEntries(yaml.map((p) => [p.name, p]));
  assert.deepEqual(byName["order-processing"].topics, ["orders.*"]);
  assert.deepEqual(byName["customer-support"].routes[0].agents, [{ promptId: "cs" }]);
  assert.equal(
    byName["customer-support"].routes[0].template?.source,
    "New customer support request:\n\nCustomer ID: {customer_id}\nIssue: {message}",
  );
  assert.equal(
    byName["order-processing"].routes[0].template?.source,
    "Order Event:\nOrder ID: {order_id}\nEvent: {event_type}",
  );
  assert.equal(byName.analytics.routes[0].template, undefined);
  assert.equal(byName.analytics.delivery.retries.max, 3);
});

Deno.test("every problem names the file, the field path and the reason", () => {
  const problems = problemsOf(`
name: bad name!
source: { topics: [] }
routes:
  - name: r
    invoke: { prompt_id: p, url: "http://x", timeout: soon }
    transform: { template: "Hello {name" }
    extra: 1
delivery: { concurrency: 0 }
`);
  assert.deepEqual(
    problems.sort(),
    [
      "pipelines/x.yaml:delivery.concurrency: Too small: expected number to be >=1",
      "pipelines/x.yaml:name: use letters, digits, '.', '_' and '-' only",
      'pipelines/x.yaml:routes[0]: Unrecognized key: "extra"',
      'pipelines/x.yaml:routes[0].invoke.timeout: "soon" is not a duration (write e.g. 500ms, 30s or 2m)',
      'pipelines/x.yaml:routes[0].transform.template: bad template: unclosed "{" at character 7',
      "pipelines/x.yaml:source.topics: Too small: expected array to have >=1 items",
    ].sort(),
  );
});

Deno.test("a registered source.format takes no decode but json, and only an avro pipeline's examples name a schema", () => {
  const yaml = (source: string, decode: string) =>
    `name: p\nsource: {topics: [t]${source}}\n${decode}routes: [{name: r, invoke: {prompt_id: p}}]\n` +
    "examples: [{schema: p.avsc, value: {}, expect: {route: r}}]\n";
  assert.deepEqual(problemsOf(yaml(", format: protobuf", "decode: bytes\n")), [
    "pipelines/x.yaml:decode: bytes contradicts source.format protobuf: a registered record decodes to a value as JSON does (leave decode out)",
    "pipelines/x.yaml:examples[0].schema: an Avro schema is for a pipeline whose source.format is avro, not protobuf",
  ]);
  assert.deepEqual(problemsOf(yaml("", "decode: text\n")), [
    "pipelines/x.yaml:examples[0].schema: an Avro schema is for a pipeline whose source.format is avro, not auto",
  ]);
  assert.deepEqual(problemsOf(yaml(", format: avro", "decode: json\n")), []);
  assert.deepEqual(problemsOf(yaml(", format: json-schema", "decode: text\n")).slice(0, 1), [
    "pipelines/x.yaml:decode: text contradicts source.format json-schema: a registered record decodes to a value as JSON does (leave decode out)",
  ]);
});

Deno.test("invoke needs exactly one of prompt_id and url", () => {
  const both = problemsOf(
    `name: p\nsource: {topics: [a]}\nroutes: [{name: r, invoke: {prompt_id: p, url: "http://a"}}]`,
  );
  assert.deepEqual(both, ["pipelines/x.yaml:routes[0].invoke: give exactly one of prompt_id and url"]);
  const neither = problemsOf(`name: p\nsource: {topics: [a]}\nroutes: [{name: r, invoke: {}}]`);
  assert.deepEqual(neither, ["pipelines/x.yaml:routes[0].invoke: give exactly one of prompt_id and url"]);
});

Deno.test("an unset ${VAR} is reported at its field; ${VAR:-default} falls back", () => {
  const yaml =
    `name: p\nsource: {topics: ["\${TOPIC:-a.events}"]}\nroutes: [{name: r, invoke: {prompt_id: "\${PROMPT}"}}]`;
  assert.deepEqual(problemsOf(yaml), [
    "pipelines/x.yaml:routes[0].invoke.prompt_id: environment variable PROMPT is not set",
  ]);
  const { pipelines } = parsePipelineText("x.yaml", yaml, { PROMPT: "p-1" }, defaults);
  assert.deepEqual(pipelines[0].topics, ["a.events"]);
  assert.deepEqual(pipelines[0].routes[0].agents, [{ promptId: "p-1" }]);
});

Deno.test("expansion happens on values, so a variable cannot change the file's structure", () => {
  const { value } = expandVariables({ a: "${X}", b: ["$${literal}"] }, { X: "]\nroutes: []" });
  assert.deepEqual(value, { a: "]\nroutes: []", b: ["${literal}"] });
});

Deno.test("YAML syntax errors give file:line:col", () => {
  const [problem] = problemsOf("name: p\nsource: {topics: [a]\n");
  assert.match(problem, /^pipelines\/x\.yaml:\d+:\d+: /);
});

Deno.test("route names must be unique within a pipeline, pipeline names across files", async () => {
  assert.deepEqual(
    problemsOf(
      `name: p\nsource: {topics: [a]}\nroutes: [{name: r, invoke: {prompt_id: p}}, {name: r, invoke: {prompt_id: q}}]`,
    ),
    ['pipelines/x.yaml:routes[1].name: route name "r" is used twice'],
  );
  const dir = await Deno.makeTempDir();
  const text = `name: same\nsource: {topics: [a]}\nroutes: [{name: r, invoke: {prompt_id: p}}]\n`;
  await Deno.writeTextFile(`${dir}/a.yaml`, text);
  await Deno.writeTextFile(`${dir}/b.yml`, text);
  await assert.rejects(loadPipelines({ dir }, {}, defaults), (error: FatalError) => {
    assert.deepEqual(error.lines, [`${dir}/b.yml:name: pipeline "same" is also defined in ${dir}/a.yaml`]);
    assert.equal(error.exitCode, 2);
    return true;
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a missing or empty pipelines directory is a clear configuration error", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(loadPipelines({ dir }, {}, defaults), /no pipeline files \(\*\.yaml\) found/);
  await assert.rejects(loadPipelines({ dir: `${dir}/nope` }, {}, defaults), /cannot read the pipelines directory/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("routes.json errors name the route's index and field", () => {
  const { problems } = parseSeedRoutesText(
    "config/routes.json",
    '[{"name": "a", "topic_pattern": "t"}, {"name": "b", "topic_pattern": "u", "prompt_id": "p", "field_match": {"x": [1]}}]',
    {},
    defaults,
  );
  assert.equal(problems.length, 2);
  assert.match(problems[0], /^config\/routes\.json:\[0\]\.prompt_id: /);
  assert.match(problems[1], /^config\/routes\.json:\[1\]\.field_match\.x: /);
  assert.match(parseSeedRoutesText("r.json", "[", {}, defaults).problems[0], /^r\.json: not valid JSON/);
});

Deno.test("settings keep the seed's names and defaults and reject bad values by name", () => {
  const settings = loadSettings({});
  assert.equal(settings.groupId, "archestra-bridge");
  assert.equal(settings.maxRetries, 3);
  assert.equal(settings.retryDelayMs, 1000);
  assert.equal(settings.logLevel, "info");
  assert.equal(settings.archestraUrl, undefined);
  assert.equal(settings.bootstrapServers, undefined);
  const custom = loadSettings({
    KAFKA_BOOTSTRAP_SERVERS: "a:9092, b:9092",
    RETRY_DELAY: "2.5",
    LOG_LEVEL: "debug",
    ARCHESTRA_URL: "http://archestra:9000/",
    KAFKA_TOPICS: "",
  });
  assert.deepEqual(custom.bootstrapServers, ["a:9092", "b:9092"]);
  assert.equal(custom.retryDelayMs, 2500);
  assert.equal(custom.logLevel, "debug");
  assert.equal(custom.archestraUrl, "http://archestra:9000");
  assert.equal(custom.topics, undefined, "empty counts as unset");
  assert.throws(() => loadSettings({ MAX_RETRIES: "lots", ARCHESTRA_URL: "not a url" }), (error: FatalError) => {
    assert.deepEqual(error.lines.map((line) => line.split(":").slice(0, 2).join(":")).sort(), [
      "environment:ARCHESTRA_URL",
      "environment:MAX_RETRIES",
    ]);
    return true;
  });
});

Deno.test("settings: one name each, old names read with a deprecation line, durations with units", () => {
  const lines: string[] = [];
  const old = loadSettings(
    { MAX_RETRIES: "5", RETRY_DELAY: "2", COMMIT_INTERVAL: "3", ARCHESTRA_A2A_API: "v2", ROUTES_CONFIG_FILE: "r.json" },
    (line) => lines.push(line),
  );
  assert.equal(old.maxRetries, 5);
  assert.equal(old.retryDelayMs, 2000, "an old name's bare number is seconds, as it was");
  assert.equal(old.commitIntervalMs, 3000);
  assert.equal(old.archestraA2a, "1.0", "ARCHESTRA_A2A_API=v2 is A2A 1.0");
  assert.equal(old.routesConfigFile, "r.json");
  assert.deepEqual(lines.sort(), [
    "environment:ARCHESTRA_A2A_API is deprecated: use ARCHESTRA_A2A_VERSION",
    "environment:COMMIT_INTERVAL is deprecated: use KAFKA_COMMIT_INTERVAL",
    "environment:MAX_RETRIES is deprecated: use AGENT_MAX_RETRIES",
    "environment:RETRY_DELAY is deprecated: use AGENT_RETRY_DELAY",
    "environment:ROUTES_CONFIG_FILE is deprecated: use PIPELINES_ROUTES_FILE",
  ]);
  const both: string[] = [];
  assert.equal(loadSettings({ AGENT_MAX_RETRIES: "1", MAX_RETRIES: "9" }, (line) => both.push(line)).maxRetries, 1);
  assert.deepEqual(both, [
    "environment:MAX_RETRIES is ignored: AGENT_MAX_RETRIES is set (MAX_RETRIES is its old name)",
  ]);
  const quiet: string[] = [];
  const current = loadSettings(
    { KAFKA_COMMIT_INTERVAL: "250ms", AGENT_RETRY_DELAY: "1.5s" },
    (line) => quiet.push(line),
  );
  assert.equal(current.commitIntervalMs, 250);
  assert.equal(current.retryDelayMs, 1500);
  assert.deepEqual(quiet, []);
  assert.throws(
    () => loadSettings({ KAFKA_COMMIT_INTERVAL: "1000" }),
    /environment:KAFKA_COMMIT_INTERVAL: "1000" has no unit: write 1000s for seconds, or 1000ms/,
  );
  assert.throws(() => loadSettings({ RETRY_DELAY: "soon" }), /environment:RETRY_DELAY: "soon" is not a duration/);
  assert.throws(() => loadSettings({ ARCHESTRA_A2A_VERSION: "v2" }), /environment:ARCHESTRA_A2A_VERSION: /);
});

Deno.test("a prompt_id route's A2A version picks Archestra's endpoint", () => {
  const archestra = { archestraUrl: "http://a:9000", archestraA2a: "0.3" as const };
  assert.equal(agentEndpoint({ promptId: "p" }, archestra).url, "http://a:9000/v1/a2a/p");
  assert.deepEqual(agentEndpoint({ promptId: "p", a2a: "1.0" }, archestra), {
    url: "http://a:9000/v2/a2a/p",
    token: undefined,
    version: "1.0",
  });
  const [pipeline] = parsePipelineText(
    "pipelines/x.yaml",
    `name: p\nsource: {topics: [a]}\nroutes: [{name: r, invoke: {prompt_id: x, a2a: "1.0"}}]`,
    {},
    defaults,
  ).pipelines;
  assert.equal(agentEndpoint(pipeline.routes[0].agents[0], archestra).url, "http://a:9000/v2/a2a/x");
});

Deno.test("parseDotEnv() reads comments, quotes and export", () => {
  assert.deepEqual(
    parseDotEnv("# c\nexport A=1\nB = \"two words\"\nC='x # y'\nD=plain # note\nnot a line\n"),
    { A: "1", B: "two words", C: "x # y", D: "plain" },
  );
});

Deno.test("routes.json values are expanded once, so $${ stays a literal", () => {
  const { pipelines, problems } = parseSeedRoutesText(
    "r.json",
    '[{"name": "a", "topic_pattern": "t", "prompt_id": "p", "transform_template": "Total $${amount}"}]',
    {},
    defaults,
  );
  assert.deepEqual(problems, []);
  assert.equal(pipelines[0].routes[0].template?.source, "Total ${amount}");
});

Deno.test("agent URLs must be http(s) and timeouts more than zero", () => {
  assert.deepEqual(
    problemsOf(`name: p\nsource: {topics: [a]}\nroutes: [{name: r, invoke: {url: "localhost:9000", timeout: 0}}]`),
    [
      "pipelines/x.yaml:routes[0].invoke.url: expected an http:// or https:// URL",
      "pipelines/x.yaml:routes[0].invoke.timeout: must be more than 0",
    ],
  );
  assert.throws(() => loadSettings({ ARCHESTRA_URL: "archestra:9000" }), /environment:ARCHESTRA_URL: expected an http/);
  assert.throws(() => loadSettings({ KAFKA_TOPIC_REFRESH: "0" }), /environment:KAFKA_TOPIC_REFRESH: /);
});

Deno.test("pipeline files behind symlinks (mounted config maps) are read", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/data`);
  await Deno.writeTextFile(
    `${dir}/data/a.yaml`,
    `name: a\nsource: {topics: [a]}\nroutes: [{name: r, invoke: {prompt_id: p}}]\n`,
  );
  await Deno.symlink(`${dir}/data/a.yaml`, `${dir}/a.yaml`);
  await Deno.symlink(`${dir}/data`, `${dir}/..data.yaml`); // a directory link with a .yaml name is skipped
  const pipelines = await loadPipelines({ dir }, {}, defaults);
  assert.deepEqual(pipelines.map((p) => p.name), ["a"]);
  await Deno.remove(dir, { recursive: true });
});
