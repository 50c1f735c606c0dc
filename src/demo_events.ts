/**
 * @module
 * The old bridge's three example events, as `deno task send` produces them, and more like them.
 *
 * @example
 * ```ts
 * import { exampleEvents } from "./demo_events.ts";
 * exampleEvents(0).length; // 3: one each for customer.events, orders.events, analytics.events
 * ```
 */
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
