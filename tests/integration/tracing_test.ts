/**
 * Tracing with Deno's built-in OpenTelemetry: the bridge as a subprocess with OTEL_DENO=true,
 * exporting OTLP (JSON over HTTP) to a receiver in this test, which reads the spans it got.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { testBroker } from "../support/broker.ts";
import { createTopics, produce, readRecords, testKafka, uniqueId } from "../support/kafka.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number };
}

/** A local OTLP/HTTP receiver (JSON encoding) that keeps the spans it is sent. */
function startOtlpReceiver() {
  const spans: OtlpSpan[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json().catch(() => ({}));
    if (new URL(request.url).pathname === "/v1/traces") {
      for (const resource of body.resourceSpans ?? []) {
        for (const scope of resource.scopeSpans ?? []) spans.push(...scope.spans);
      }
    }
    return Response.json({});
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, spans, close: () => server.shutdown() };
}

function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value && Object.values(value)[0];
}

Deno.test(
  "each message gets a span from consume to publish, continuing the producer's traceparent",
  integration,
  async () => {
    const topic = `trace-${uniqueId()}.events`;
    const { kafka } = await testKafka();
    await createTopics(kafka, [topic]);
    const agent = startDemoAgent({ behaviours: { broken: { rpcError: { code: -32000, message: "no" } } } });
    const receiver = startOtlpReceiver();
    const dir = await pipelineDir(
      `name: traced\nsource: { topics: [${topic}] }\nroutes:\n` +
        `  - { name: failing, match: { fields: { fail: true } }, invoke: { prompt_id: broken } }\n` +
        `  - { name: main, invoke: { prompt_id: p } }\n`,
    );
    const bridge = await startMain({
      PIPELINES_DIR: dir,
      KAFKA_BOOTSTRAP_SERVERS: await testBroker(),
      KAFKA_GROUP_ID: `trace-${uniqueId()}`,
      ARCHESTRA_URL: agent.url,
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "agentstream-test",
    });
    const producerTrace = "0af7651916cd43dd8448eb211c80319c";
    const producerSpan = "b7ad6b7169203331";
    const failingTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    try {
      await produce(kafka, topic, [
        { key: "traced", value: "{}", headers: { traceparent: `00-${producerTrace}-${producerSpan}-01` } },
        { key: "failing", value: '{"fail":true}', headers: { traceparent: `00-${failingTrace}-00f067aa0ba902b7-01` } },
        { key: "untraced", value: "{}" },
      ]);
      const records = await readRecords(kafka, [`${topic}.responses`, `${topic}.dlq`], 3);
      const byKey = Object.fromEntries(records.map((r) => [r.key, r]));
      bridge.child.kill("SIGTERM");
      assert.equal((await bridge.output).code, 0);

      // Deno exports what is left when the process exits.
      const spans = receiver.spans.filter((s) => s.name === `process ${topic}`);
      assert.equal(spans.length, 3, `spans exported: ${receiver.spans.map((s) => s.name)}`);
      const spanFor = (key: string) =>
        spans.find((s) => attribute(s, "agentstream.outcome") && byKey[key].headers.traceparent?.includes(s.spanId))!;

      const traced = spanFor("traced");
      assert.ok(traced, "the reply's traceparent names the message's span");
      assert.equal(traced.traceId, producerTrace, "the producer's trace is continued");
      assert.equal(traced.parentSpanId, producerSpan);
      assert.equal(attribute(traced, "messaging.destination.name"), topic);
      assert.equal(attribute(traced, "messaging.destination.partition.id"), "0");
      assert.equal(Number(attribute(traced, "messaging.kafka.offset")), 0);
      assert.equal(attribute(traced, "agentstream.pipeline"), "traced");
      assert.equal(attribute(traced, "agentstream.route"), "main");
      assert.equal(attribute(traced, "agentstream.agent"), "p");
      assert.equal(attribute(traced, "agentstream.outcome"), "replied");
      const call = agent.requests.find((r) => r.message?.metadata?.offset === "0");
      assert.match(
        call?.traceparent ?? "",
        new RegExp(`^00-${producerTrace}-[0-9a-f]{16}-01$`),
        "sent on to the agent",
      );

      const failing = spanFor("failing");
      assert.equal(failing.traceId, failingTrace);
      assert.equal(attribute(failing, "agentstream.outcome"), "dead-lettered");
      assert.equal(failing.status?.code, 2, "an error status");
      assert.equal(byKey.failing.headers["x-error-stage"], "invoke");

      const untraced = spanFor("untraced");
      assert.notEqual(untraced.traceId, producerTrace, "a message without traceparent starts a trace");
      assert.equal(untraced.parentSpanId ?? "", "");
    } finally {
      try {
        bridge.child.kill("SIGKILL");
      } catch { /* stopped already */ }
      await agent.close();
      await receiver.close();
    }
  },
);
