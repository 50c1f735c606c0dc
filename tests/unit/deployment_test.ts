/**
 * docker-compose.yml, the Helm chart and the Dockerfile against the configuration schema: every
 * variable they set is one the bridge reads, and every one a deployment needs is set. (No Docker
 * engine or helm binary runs here: the files are read as text and YAML.)
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { standInEnv } from "../../src/config/expand.ts";
import { configuredSources, readPipelines } from "../../src/config/load_pipelines.ts";
import { DEPLOYMENT_REQUIRED, loadSettings, settingNames } from "../../src/config/settings.ts";

/** The variables the shipped pipelines read through `${VAR}`. */
async function pipelineVariables(): Promise<Set<string>> {
  const used = new Set<string>();
  await readPipelines(await configuredSources({ dir: "pipelines" }), standInEnv({}, used), loadSettings({}));
  return used;
}

async function checkVariables(where: string, names: string[]) {
  const pipelineVars = await pipelineVariables();
  assert.ok(pipelineVars.size >= 3, "the shipped pipelines read their prompt ids");
  const known = new Set([...settingNames(), ...pipelineVars]);
  const unknown = names.filter((name) => !known.has(name));
  assert.deepEqual(unknown, [], `${where} sets variables the bridge does not read`);
  const missing = [...DEPLOYMENT_REQUIRED, ...pipelineVars].filter((name) => !names.includes(name));
  assert.deepEqual(missing, [], `${where} leaves variables unset that a deployment needs`);
}

Deno.test("docker-compose.yml sets only variables the bridge reads, and all it needs", async () => {
  const compose = parse(await Deno.readTextFile("docker-compose.yml"));
  const bridge = compose.services["kafka-bridge"];
  await checkVariables("docker-compose.yml", Object.keys(bridge.environment));
  assert.equal(compose.services.kafka.image, "apache/kafka:4.4.0", "compose runs the broker version the tests use");
  assert.deepEqual(compose.services["kafka-ui"].profiles, ["debug"]);
  assert.ok(bridge.ports.includes("9464:9464"), "the metrics port is published");
});

Deno.test("the Helm chart sets only variables the bridge reads, and all it needs", async () => {
  const deployment = await Deno.readTextFile("helm/templates/deployment.yaml");
  const env = deployment.slice(deployment.indexOf("env:"), deployment.indexOf("ports:"));
  const names = [...env.matchAll(/^\s*- name: ([A-Z][A-Z0-9_]*)$/gm)].map((m) => m[1]);
  await checkVariables("helm/templates/deployment.yaml", names);
  assert.match(deployment, /livenessProbe:\s+httpGet:\s+path: \/healthz/);
  assert.match(deployment, /readinessProbe:\s+httpGet:\s+path: \/readyz/);
});

Deno.test("the Helm chart's values keep the seed's names, and every value a template reads exists", async () => {
  const values = parse(await Deno.readTextFile("helm/values.yaml"));
  const get = (path: string) => path.split(".").reduce((node, key) => node?.[key], values);
  for (
    const seed of [
      "archestra.url",
      "archestra.existingSecret",
      "kafka.bootstrapServers",
      "kafka.topics",
      "prompts.customerSupport.id",
      "prompts.orderProcessing.id",
      "prompts.analytics.id",
      "routes.config",
      "replicaCount",
    ]
  ) {
    assert.notEqual(get(seed), undefined, `helm/values.yaml has no ${seed}`);
  }
  for await (const entry of Deno.readDir("helm/templates")) {
    const text = await Deno.readTextFile(`helm/templates/${entry.name}`);
    for (const [, path] of text.matchAll(/\.Values\.([A-Za-z0-9_.]+)/g)) {
      assert.notEqual(get(path), undefined, `helm/templates/${entry.name} reads .Values.${path}, not in values.yaml`);
    }
  }
  assert.equal(get("metrics.port"), loadSettings({}).metricsPort, "the chart's metrics port is the default");
});

Deno.test("the image runs as a non-root user with a health check on the metrics port", async () => {
  const dockerfile = await Deno.readTextFile("Dockerfile");
  assert.match(dockerfile, /^USER deno$/m);
  assert.match(dockerfile, /^HEALTHCHECK [^]*?127\.0\.0\.1:9464\/healthz/m);
  assert.match(dockerfile, /^RUN deno cache --frozen /m, "dependencies are cached at build time");
  assert.equal(loadSettings({}).metricsPort, 9464);
});
