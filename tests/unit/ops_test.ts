import assert from "node:assert/strict";
import { getLogger, reset } from "@logtape/logtape";
import { failure, FatalError } from "../../src/errors.ts";
import { setupLogging } from "../../src/log.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { startOpsServer } from "../../src/ops/server.ts";
import { clearSecrets, redact, registerUrlSecrets } from "../../src/secrets.ts";
import { loadSettings } from "../../src/config/settings.ts";
import { decodeJob } from "../../src/stages/decode.ts";
import { replyEnvelope } from "../../src/stages/publish.ts";
import { matchJob } from "../../src/stages/match.ts";
import { sample } from "../support/prometheus.ts";
import { job, pipeline, record } from "./helpers.ts";

const routed = pipeline(
  "name: shop\nsource: {topics: [orders.events]}\nunmatched: skip\nroutes:\n" +
    "  - {name: paid, match: {fields: {paid: true}}, invoke: {prompt_id: p}}\n",
);

function finished(value: string, settle: (j: ReturnType<typeof job>) => void) {
  const j = job(routed, record(value));
  decodeJob(j);
  if (!j.failure) matchJob(j);
  settle(j);
  return j;
}

Deno.test("metrics count each outcome once, by pipeline and route, from the job itself", async () => {
  const metrics = createMetrics();
  metrics.consumed("shop", 4);
  const reply = { text: "ok", parts: [], taskId: null, contextId: null, latencyMs: 300, url: "http://a" };
  metrics.outcome(finished('{"paid":true}', (j) => j.reply = { ...reply, attempts: 3 }), "replied");
  metrics.outcome(
    finished('{"paid":true}', (j) => j.failure = failure("invoke", "exhausted", "503", { attempts: 2 })),
    "dead-lettered",
  );
  metrics.outcome(finished("{bad", () => {}), "dead-lettered");
  metrics.outcome(finished('{"paid":false}', (j) => j.skipped = true), "skipped");
  metrics.outcome(finished('{"paid":true}', (j) => j.abandoned = true), "abandoned");
  const text = await metrics.registry.metrics();
  const paid = { pipeline: "shop", route: "paid" };
  assert.equal(sample(text, "agentstream_messages_consumed_total", { pipeline: "shop" }), 4);
  assert.equal(sample(text, "agentstream_messages_matched_total", paid), 2, "abandoned work is not counted");
  assert.equal(sample(text, "agentstream_messages_invoked_total", paid), 2);
  assert.equal(sample(text, "agentstream_agent_retries_total", paid), 3);
  assert.equal(sample(text, "agentstream_messages_replied_total", paid), 1);
  assert.equal(sample(text, "agentstream_messages_replied_total", { ...paid, agent: "p" }), 1, "by agent too");
  assert.equal(sample(text, "agentstream_messages_skipped_total", { pipeline: "shop" }), 1);
  assert.equal(
    sample(text, "agentstream_messages_dead_lettered_total", { ...paid, stage: "invoke", class: "exhausted" }),
    1,
  );
  assert.equal(
    sample(text, "agentstream_messages_dead_lettered_total", { pipeline: "shop", route: "", stage: "decode" }),
    1,
  );
  assert.equal(sample(text, "agentstream_agent_latency_seconds_bucket", { ...paid, le: "0.25" }), 0);
  assert.equal(sample(text, "agentstream_agent_latency_seconds_bucket", { ...paid, le: "0.5" }), 1);
});

Deno.test("consumer lag is the log end minus the committed offset, and forgotten on a rebalance", async () => {
  const metrics = createMetrics();
  metrics.highWatermark("t", 0, "120");
  metrics.highWatermark("t", 1, "5");
  metrics.committed([{ topic: "t", partition: 0, offset: "100" }]);
  let text = await metrics.registry.metrics();
  assert.equal(sample(text, "agentstream_consumer_lag", { topic: "t", partition: "0" }), 20);
  assert.equal(
    sample(text, "agentstream_consumer_lag", { topic: "t", partition: "1" }),
    undefined,
    "nothing committed",
  );
  metrics.forgetPartitions();
  text = await metrics.registry.metrics();
  assert.equal(sample(text, "agentstream_consumer_lag", { topic: "t", partition: "0" }), undefined);
});

Deno.test("in-flight and circuit gauges read the bridge's state when scraped", async () => {
  const metrics = createMetrics();
  let pending = 7;
  metrics.inFlightFrom(() => pending);
  metrics.circuit("http://agent:9000", "down");
  let text = await metrics.registry.metrics();
  assert.equal(sample(text, "agentstream_messages_in_flight"), 7);
  assert.equal(sample(text, "agentstream_circuit_open", { agent: "http://agent:9000" }), 1);
  pending = 0;
  metrics.circuit("http://agent:9000", "closed");
  text = await metrics.registry.metrics();
  assert.equal(sample(text, "agentstream_messages_in_flight"), 0);
  assert.equal(sample(text, "agentstream_circuit_open", { agent: "http://agent:9000" }), 0);
});

Deno.test("the ops server serves /metrics, /healthz and /readyz (503 with the failing checks)", async () => {
  const metrics = createMetrics();
  metrics.consumed("shop", 2);
  let ready = false;
  const server = startOpsServer({
    port: 0,
    hostname: "127.0.0.1",
    metrics,
    readiness: () => ({ ready, kafka: ready, agents: true }),
  });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const scrape = await fetch(`${base}/metrics`);
    assert.match(scrape.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.equal(sample(await scrape.text(), "agentstream_messages_consumed_total", { pipeline: "shop" }), 2);
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const notReady = await fetch(`${base}/readyz`);
    assert.equal(notReady.status, 503);
    assert.deepEqual(await notReady.json(), { ready: false, kafka: false, agents: true });
    ready = true;
    const nowReady = await fetch(`${base}/readyz`);
    assert.equal(nowReady.status, 200);
    await nowReady.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("a metrics port in use is a configuration error naming METRICS_PORT", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    assert.throws(
      () =>
        startOpsServer({ port, hostname: "127.0.0.1", metrics: createMetrics(), readiness: () => ({ ready: true }) }),
      (error: unknown) =>
        error instanceof FatalError && error.exitCode === 2 && /^environment:METRICS_PORT: port \d+ is in use/.test(
          error.message,
        ),
    );
  } finally {
    listener.close();
  }
});

Deno.test("secrets from settings are blanked in failures, fatal errors and log lines", async () => {
  clearSecrets();
  try {
    loadSettings({ ARCHESTRA_TOKEN: "token-abc123", KAFKA_SASL_PASSWORD: "pass-xyz789" });
    assert.equal(redact("a token-abc123 b pass-xyz789"), "a [redacted] b [redacted]");
    assert.equal(failure("invoke", "permanent", "HTTP 401: got token-abc123").message, "HTTP 401: got [redacted]");
    assert.equal(new FatalError(["SASL failed for pass-xyz789"]).lines[0], "SASL failed for [redacted]");

    const lines: string[] = [];
    const original = { ...console };
    for (const method of ["debug", "info", "log", "warn", "error"] as const) {
      console[method] = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
    }
    try {
      await setupLogging({ level: "debug", format: "json" });
      getLogger(["agentstream", "test"]).warn("calling with {header}", { header: "Bearer token-abc123" });
    } finally {
      Object.assign(console, original);
      await reset();
    }
    assert.equal(lines.length, 1);
    assert.match(lines[0], /calling with/);
    assert.doesNotMatch(lines[0], /token-abc123/);
    assert.match(lines[0], /Bearer \[redacted\]/);
  } finally {
    clearSecrets();
  }
});

Deno.test("a secret is blanked as it reads inside JSON too", () => {
  clearSecrets();
  try {
    loadSettings({ ARCHESTRA_TOKEN: 'tok"en\\42' });
    const line = JSON.stringify({ message: 'header: Bearer tok"en\\42' });
    assert.equal(redact(line).includes("tok"), false, redact(line));
  } finally {
    clearSecrets();
  }
});

Deno.test("a fanned-out message is matched once and reaches each of its agents once", async () => {
  const fan = pipeline(
    "name: fan\nsource: {topics: [orders.events]}\nroutes: [{name: all, invoke: {prompt_id: [a, b]}}]\n",
  );
  const metrics = createMetrics();
  const reply = { text: "ok", parts: [], taskId: null, contextId: null, latencyMs: 10, url: "http://x", attempts: 1 };
  for (const agent of fan.routes[0].agents) {
    const j = job(fan, record("{}"));
    decodeJob(j);
    matchJob(j);
    j.agent = agent;
    j.reply = reply;
    metrics.outcome(j, "replied");
  }
  const text = await metrics.registry.metrics();
  const all = { pipeline: "fan", route: "all" };
  assert.equal(sample(text, "agentstream_messages_matched_total", all), 1);
  assert.equal(sample(text, "agentstream_messages_replied_total", { ...all, agent: "a" }), 1);
  assert.equal(sample(text, "agentstream_messages_replied_total", { ...all, agent: "b" }), 1);
});

Deno.test("a credential in an agent URL is a secret: blanked in the envelope and in messages", () => {
  clearSecrets();
  try {
    const p = pipeline(
      "name: u\nsource: {topics: [orders.events]}\nroutes: [{name: r, invoke: {url: 'https://agents.example/a2a?api_key=k-123456&v=2'}}]\n",
    );
    const j = job(p, record("{}"));
    decodeJob(j);
    matchJob(j);
    j.reply = {
      text: "",
      parts: [],
      taskId: null,
      contextId: null,
      latencyMs: 1,
      attempts: 1,
      url: p.routes[0].agents[0].url!,
    };
    const envelope = replyEnvelope(j) as { agent: { url: string } };
    assert.equal(envelope.agent.url, "https://agents.example/a2a?api_key=[redacted]&v=2");
    assert.equal(
      failure("invoke", "transient", "cannot reach https://agents.example/a2a?api_key=k-123456").message.includes(
        "k-123456",
      ),
      false,
    );
  } finally {
    clearSecrets();
  }
});

Deno.test("a credential in an agent URL is redacted in every form a URL can carry it: raw, %-encoded, +-encoded", () => {
  clearSecrets();
  try {
    const p = pipeline(
      "name: u\nsource: {topics: [orders.events]}\nroutes:\n" +
        "  - {name: r, invoke: {url: 'https://bot:p%40ss-word@agents.example/a2a?api_key=AbC%2BdEf&sig=x+y+z1&v=2'}}\n",
    );
    const url = p.routes[0].agents[0].url!;
    const metricLabel = redact(url);
    assert.equal(metricLabel, "https://bot:[redacted]@agents.example/a2a?api_key=[redacted]&sig=[redacted]&v=2");
    registerUrlSecrets("https://bot:p%zz-oops@agents.example/a2a"); // no valid percent-encoding: no throw
    assert.equal(redact("p%zz-oops"), "[redacted]");
    // The decoded forms, as an agent or a library may echo them, and the other encodings of the same values.
    for (
      const form of ["p@ss-word", "p%40ss-word", "AbC+dEf", "AbC%2BdEf", "AbC%2bdEf", "x y z1", "x+y+z1", "x%20y%20z1"]
    ) {
      assert.equal(redact(`echo ${form} end`), "echo [redacted] end", form);
    }
  } finally {
    clearSecrets();
  }
});
