/**
 * SASL and TLS against a real broker: a local broker of this file's own with SASL_PLAINTEXT, SSL
 * (client certificate required) and SASL_SSL listeners, a throwaway CA, and the bridge configured
 * only through the environment, as a user would configure it.
 */
import assert from "node:assert/strict";
import { startDemoAgent } from "../../src/agent/demo_agent.ts";
import { loadSettings } from "../../src/config/settings.ts";
import { throwawayBroker } from "../../src/infra/local_broker.ts";
import { createKafka } from "../../src/kafka/client.ts";
import { makeTestCertificates } from "../support/certs.ts";
import { createTopics, produce, readRecords, uniqueId } from "../support/kafka.ts";
import { pipelineDir, startMain } from "../support/main_process.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "SASL (PLAIN, SCRAM-SHA-256/512) and TLS (with a client certificate) against a real broker",
  integration,
  async (t) => {
    const password = `pw-${crypto.randomUUID()}`;
    const certs = await makeTestCertificates();
    const broker = await throwawayBroker((line) => console.error(`kafka (security test): ${line}`), {
      users: { bridge: password },
      tls: { keyAndChainFile: certs.brokerKeyAndChainFile, caFile: certs.caFile },
    });
    // The test itself produces and reads on the plaintext listener; the bridge uses the secured ones.
    const plain = createKafka(loadSettings({}), [broker.bootstrap]);
    const agent = startDemoAgent({});
    const anyPipeline = await pipelineDir(
      "name: any\nsource: { topics: [secure-any] }\nroutes: [{ name: r, invoke: { prompt_id: p } }]\n",
    );
    const tls = { KAFKA_SSL_CA_FILE: certs.caFile };
    const clientCert = { KAFKA_SSL_CERT_FILE: certs.clientCertFile, KAFKA_SSL_KEY_FILE: certs.clientKeyFile };
    const sasl = (mechanism: string, secret = password) => ({
      KAFKA_SASL_MECHANISM: mechanism,
      KAFKA_SASL_USERNAME: "bridge",
      KAFKA_SASL_PASSWORD: secret,
    });

    /** Runs the bridge with `env` on one message and returns its output once the reply is in. */
    const roundTrip = async (listener: string, env: Record<string, string>) => {
      const topic = `secure-${uniqueId()}.events`;
      await createTopics(plain, [topic]);
      const dir = await pipelineDir(
        `name: s\nsource: { topics: [${topic}] }\nroutes: [{ name: r, invoke: { prompt_id: p } }]\n`,
      );
      const bridge = await startMain({
        PIPELINES_DIR: dir,
        KAFKA_BOOTSTRAP_SERVERS: listener,
        KAFKA_GROUP_ID: `secure-${uniqueId()}`,
        ARCHESTRA_URL: agent.url,
        LOG_LEVEL: "DEBUG",
        ...env,
      });
      try {
        await produce(plain, topic, [{ key: "k", value: JSON.stringify({ hello: "world" }) }]);
        const [reply] = await readRecords(plain, [`${topic}.responses`], 1);
        assert.equal(reply.key, "k");
      } finally {
        bridge.child.kill("SIGTERM");
      }
      const output = await bridge.output;
      assert.equal(output.code, 0, output.stderr);
      return output;
    };

    try {
      await t.step("SASL_PLAINTEXT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512", async () => {
        for (const mechanism of ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]) {
          const { stdout, stderr } = await roundTrip(broker.secure!.SASL_PLAINTEXT, {
            KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT",
            ...sasl(mechanism),
          });
          assert.equal(`${stdout}${stderr}`.includes(password), false, "the SASL password is in the output");
        }
      });

      await t.step("SSL with a client certificate the broker requires", async () => {
        await roundTrip(broker.secure!.SSL, { KAFKA_SECURITY_PROTOCOL: "SSL", ...tls, ...clientCert });
      });

      await t.step("SASL_SSL with SCRAM-SHA-512", async () => {
        await roundTrip(broker.secure!.SASL_SSL, {
          KAFKA_SECURITY_PROTOCOL: "SASL_SSL",
          ...tls,
          ...sasl("SCRAM-SHA-512"),
        });
      });

      await t.step("a wrong password is a clear error at start-up, and is not printed", async () => {
        const wrong = `wrong-${crypto.randomUUID()}`;
        const started = Date.now();
        const bridge = await startMain({
          PIPELINES_DIR: anyPipeline,
          KAFKA_BOOTSTRAP_SERVERS: broker.secure!.SASL_PLAINTEXT,
          ARCHESTRA_URL: agent.url,
          KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT",
          ...sasl("SCRAM-SHA-256", wrong),
        });
        const { code, stdout, stderr } = await bridge.output;
        assert.equal(code, 1);
        assert.match(stderr, /cannot reach Kafka at 127\.0\.0\.1:\d+: .*(SASL|[Aa]uthentication)/);
        assert.ok(Date.now() - started < 60_000, "it fails instead of retrying for long");
        assert.equal(`${stdout}${stderr}`.includes(wrong), false, "the password is in the output");
      });

      await t.step("an untrusted broker certificate and a missing client certificate are clear errors", async () => {
        const untrusted = await startMain({
          PIPELINES_DIR: anyPipeline,
          KAFKA_BOOTSTRAP_SERVERS: broker.secure!.SASL_SSL,
          ARCHESTRA_URL: agent.url,
          KAFKA_SECURITY_PROTOCOL: "SASL_SSL",
          ...sasl("PLAIN"),
        });
        const first = await untrusted.output;
        assert.equal(first.code, 1);
        assert.match(first.stderr, /cannot reach Kafka at 127\.0\.0\.1:\d+: .*certificate/);
        const noClientCert = await startMain({
          PIPELINES_DIR: anyPipeline,
          KAFKA_BOOTSTRAP_SERVERS: broker.secure!.SSL,
          ARCHESTRA_URL: agent.url,
          KAFKA_SECURITY_PROTOCOL: "SSL",
          ...tls,
        });
        const refused = await noClientCert.output;
        assert.equal(refused.code, 1, "the broker requires a client certificate");
        // The broker's refusal comes after the TLS 1.3 handshake: the client sees the alert, or only
        // the connection closing ("Not connected", "write after end"), depending on timing.
        assert.match(refused.stderr, /cannot reach Kafka at 127\.0\.0\.1:\d+: \S/);
        const missingFile = await startMain({
          PIPELINES_DIR: anyPipeline,
          KAFKA_BOOTSTRAP_SERVERS: broker.secure!.SSL,
          ARCHESTRA_URL: agent.url,
          KAFKA_SECURITY_PROTOCOL: "SSL",
          KAFKA_SSL_CA_FILE: `${certs.dir}/nope.pem`,
        });
        const second = await missingFile.output;
        assert.equal(second.code, 2);
        assert.match(second.stderr, /^environment:KAFKA_SSL_CA_FILE: cannot read .*nope\.pem/m);
      });
    } finally {
      await agent.close();
      await broker.stop();
    }
  },
);
