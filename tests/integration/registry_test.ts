/**
 * The local schema registry (Apicurio Registry, Confluent-compatible API) as a Confluent client
 * uses it: register an Avro schema under a subject, read it back by its id.
 */
import assert from "node:assert/strict";
import { testRegistry } from "../support/registry.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };
const CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";

const ORDER_SCHEMA = {
  type: "record",
  name: "Order",
  namespace: "agentstream.test",
  fields: [
    { name: "order_id", type: "string" },
    { name: "event_type", type: { type: "enum", name: "EventType", symbols: ["created", "paid", "shipped"] } },
    { name: "amount", type: ["null", "double"], default: null },
  ],
};

async function call(url: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

function register(registry: string, subject: string, schema: object) {
  return call(`${registry}/subjects/${encodeURIComponent(subject)}/versions`, {
    method: "POST",
    headers: { "Content-Type": CONTENT_TYPE, Accept: CONTENT_TYPE },
    body: JSON.stringify({ schema: JSON.stringify(schema) }),
  });
}

Deno.test("an Avro schema registered under a subject is read back by its id", integration, async () => {
  const registry = await testRegistry();
  const subject = `orders-${crypto.randomUUID().slice(0, 8)}-value`;

  const registered = await register(registry, subject, ORDER_SCHEMA);
  assert.equal(registered.status, 200, JSON.stringify(registered.body));
  const { id } = registered.body as { id: number };
  assert.ok(Number.isInteger(id) && id > 0, `an id: ${JSON.stringify(registered.body)}`);

  const byId = await call(`${registry}/schemas/ids/${id}`, { headers: { Accept: CONTENT_TYPE } });
  assert.equal(byId.status, 200, JSON.stringify(byId.body));
  const read = byId.body as { schema: string; schemaType?: string };
  assert.deepEqual(JSON.parse(read.schema), ORDER_SCHEMA);
  assert.ok(read.schemaType === undefined || read.schemaType === "AVRO", `Avro: ${read.schemaType}`);

  // The same schema again is the same version, not a new one; the subject lists it.
  const again = await register(registry, subject, ORDER_SCHEMA);
  assert.deepEqual(again.body, { id });
  const versions = await call(`${registry}/subjects/${encodeURIComponent(subject)}/versions`);
  assert.deepEqual(versions.body, [1]);
  const subjects = await call(`${registry}/subjects`);
  assert.ok((subjects.body as string[]).includes(subject), `${subject} among ${JSON.stringify(subjects.body)}`);
});

Deno.test("a schema that is not valid Avro is refused with a 4xx and an error code", integration, async () => {
  const registry = await testRegistry();
  const refused = await register(registry, `broken-${crypto.randomUUID().slice(0, 8)}-value`, {
    type: "record",
    name: "Broken",
    fields: [{ name: "x", type: "no-such-type" }],
  });
  assert.ok(refused.status >= 400 && refused.status < 500, `a 4xx, not ${refused.status}`);
  assert.equal(typeof (refused.body as { error_code?: unknown }).error_code, "number", JSON.stringify(refused.body));
});
