/**
 * @module
 * The old bridge's three example events, as `deno task send` produces them, and more like them;
 * and the Avro example's payments (pipelines/examples/avro), as `deno task send --format avro`
 * writes them with the schema beside that pipeline.
 *
 * @example
 * ```ts
 * import { exampleEvents, examplePayments } from "./demo_events.ts";
 * exampleEvents(0).length; // 3: one each for customer.events, orders.events, analytics.events
 * examplePayments(1).length; // 4: payments.events, captured, failed, refunded, and one more
 * ```
 */
import { fileURLToPath } from "node:url";

export interface ExampleEvent {
  topic: string;
  key: string;
  value: Record<string, unknown>;
}

const SEED: ExampleEvent[] = [
  {
    topic: "customer.events",
    key: "CUST-001",
    value: {
      customer_id: "CUST-001",
      issue_type: "billing",
      priority: "high",
      message: "Double charged for subscription",
    },
  },
  {
    topic: "orders.events",
    key: "ORD-123",
    value: { order_id: "ORD-123", event_type: "shipped", customer_email: "user@example.com", details: "{}" },
  },
  {
    topic: "analytics.events",
    key: "conversion_rate",
    value: { metric_name: "conversion_rate", value: 3.5, timestamp: "2025-01-12T10:00:00Z", dimensions: "{}" },
  },
];

/** The three seed events, then `extra` more cycling through the three topics with fresh ids. */
export function exampleEvents(extra: number): ExampleEvent[] {
  const events = [...SEED];
  for (let i = 0; i < extra; i++) {
    const n = i + 2;
    const id = String(n).padStart(3, "0");
    const kind = i % 3;
    if (kind === 0) {
      events.push({
        topic: "customer.events",
        key: `CUST-${id}`,
        value: { ...SEED[0].value, customer_id: `CUST-${id}`, message: `Example request number ${n}` },
      });
    } else if (kind === 1) {
      events.push({
        topic: "orders.events",
        key: `ORD-${122 + n}`,
        value: { ...SEED[1].value, order_id: `ORD-${122 + n}` },
      });
    } else {
      events.push({ topic: "analytics.events", key: "conversion_rate", value: { ...SEED[2].value, value: n } });
    }
  }
  return events;
}

/** The Avro example's schema file, beside its pipeline (pipelines/examples/avro/payments.yaml). */
export const PAYMENT_SCHEMA_FILE = fileURLToPath(new URL("../pipelines/examples/avro/payment.avsc", import.meta.url));

const PAYMENTS: ExampleEvent[] = [
  {
    topic: "payments.events",
    key: "P-1001",
    value: {
      payment_id: "P-1001",
      order_id: "ORD-123",
      status: "CAPTURED",
      amount: "129.90",
      currency: "EUR",
      at: "2025-01-12T10:00:00Z",
      failure_reason: null,
    },
  },
  {
    topic: "payments.events",
    key: "P-1002",
    value: {
      payment_id: "P-1002",
      order_id: "ORD-124",
      status: "FAILED",
      amount: "15.00",
      currency: "USD",
      at: "2025-01-12T10:05:00Z",
      failure_reason: "card declined",
    },
  },
  {
    topic: "payments.events",
    key: "P-1003",
    value: {
      payment_id: "P-1003",
      order_id: "ORD-123",
      status: "REFUNDED",
      amount: "42.00",
      currency: "EUR",
      at: "2025-01-12T11:30:00Z",
      failure_reason: null,
    },
  },
];

/** The Avro example's three payments (values as JSON, in the shape its schema reads), then `extra` more. */
export function examplePayments(extra: number): ExampleEvent[] {
  const events = [...PAYMENTS];
  for (let i = 0; i < extra; i++) {
    const id = `P-${1004 + i}`;
    const failed = i % 3 === 2;
    events.push({
      topic: "payments.events",
      key: id,
      value: {
        ...PAYMENTS[0].value,
        payment_id: id,
        order_id: `ORD-${125 + i}`,
        status: failed ? "FAILED" : "AUTHORIZED",
        amount: `${10 + i}.50`,
        at: new Date(Date.UTC(2025, 0, 12, 12) + i * 60_000).toISOString(),
        failure_reason: failed ? "insufficient funds" : null,
      },
    });
  }
  return events;
}
