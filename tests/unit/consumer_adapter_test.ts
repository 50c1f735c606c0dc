/**
 * The consumer adapter against a stand-in for kafkajs's consumer that does what kafkajs 2.2.4 does
 * while its runner restarts: `commitOffsets` returns without committing and without its
 * COMMIT_OFFSETS event (src/consumer/runner.js, `commitOffsets`: "consumer not running, exiting").
 */
import assert from "node:assert/strict";
import type { Admin, Kafka } from "kafkajs";
import type { PartitionChange } from "../../src/delivery/ports.ts";
import { ConsumerAdapter, type ConsumerAdapterOptions } from "../../src/kafka/consumer_adapter.ts";

function standIn() {
  const listeners = new Map<string, (event: unknown) => void>();
  let runnerUp = true;
  const events = {
    GROUP_JOIN: "group_join",
    CRASH: "crash",
    REBALANCING: "rebalancing",
    STOP: "stop",
    DISCONNECT: "disconnect",
    COMMIT_OFFSETS: "commit_offsets",
  };
  const runWaiters: { count: number; resolve: () => void }[] = [];
  const calls = {
    connect: 0,
    run: 0,
    /** Resolves once `run` was called `count` times in all. */
    waitForRun: (count: number) =>
      new Promise<void>((resolve) => calls.run >= count ? resolve() : runWaiters.push({ count, resolve })),
  };
  const consumer = {
    events,
    on: (name: string, listener: (event: unknown) => void) => listeners.set(name, listener),
    connect: () => {
      calls.connect++;
      return Promise.resolve();
    },
    subscribe: () => Promise.resolve(),
    run: () => {
      calls.run++;
      // Waiters hear of it after the caller's continuation (a macrotask later), as after a real start.
      setTimeout(() => {
        for (const waiter of runWaiters.filter((w) => calls.run >= w.count)) waiter.resolve();
      });
      return Promise.resolve();
    },
    pause: () => {},
    resume: () => {},
    commitOffsets: () => {
      if (runnerUp) listeners.get(events.COMMIT_OFFSETS)?.({ payload: {} });
      return Promise.resolve();
    },
  };
  const kafka = { consumer: () => consumer } as unknown as Kafka;
  const admin = { listTopics: () => Promise.resolve(["t"]) } as unknown as Admin;
  const emit = (name: string, payload: unknown = {}) => listeners.get(name)?.({ payload });
  return { kafka, admin, emit, calls, setRunnerUp: (up: boolean) => runnerUp = up };
}

/** An adapter on the stand-in, subscribed to "t", started. */
async function startAdapter(
  kafka: Kafka,
  admin: Admin,
  options: Partial<ConsumerAdapterOptions> & { onChange?: (change: PartitionChange) => void } = {},
) {
  const { onChange, ...rest } = options;
  const adapter = new ConsumerAdapter({
    kafka,
    admin,
    groupId: "g",
    subscriptions: ["t"],
    isOutput: () => false,
    fromBeginning: true,
    refreshMs: 60_000,
    ...rest,
  });
  adapter.attach({
    onBatch: (batch) => batch,
    rebalance: { partitionsChanged: (change) => onChange?.(change), drain: () => Promise.resolve() },
  });
  await adapter.start();
  return adapter;
}

Deno.test("a commit kafkajs skips while its runner restarts is an error, and a crash is an assignment change", async () => {
  const { kafka, admin, emit, setRunnerUp } = standIn();
  const changes: string[] = [];
  const adapter = await startAdapter(kafka, admin, { onChange: ({ cause }) => changes.push(cause) });
  try {
    await adapter.commit([{ topic: "t", partition: 0, offset: "1" }]);
    emit("crash", { error: new Error("coordinator went away"), restart: true });
    setRunnerUp(false);
    await assert.rejects(adapter.commit([{ topic: "t", partition: 0, offset: "2" }]), /skipped the commit/);
    assert.equal(changes.length, 1);
    assert.match(changes[0], /crashed/);
    setRunnerUp(true);
    emit("group_join");
    assert.equal(changes.length, 2, "a join after the restart hands partitions out again");
    await adapter.commit([{ topic: "t", partition: 0, offset: "2" }]);
  } finally {
    await adapter.close();
  }
});

Deno.test("a crash kafkajs will not restart (no group coordinator after a broker restart) is restarted by the adapter", async () => {
  const { kafka, admin, emit, calls } = standIn();
  const adapter = await startAdapter(kafka, admin, { restartDelayMs: 1 });
  const failed = (async () => {
    for await (const _ of adapter.batches()) { /* none come */ }
  })();
  try {
    const runs = calls.run;
    // kafkajs 2.2.4 (src/consumer/index.js, onCrash): a non-retriable error disconnects the consumer,
    // emits CRASH with restart: false, and leaves it stopped for good.
    const error = Object.assign(new Error("Failed to find group coordinator"), {
      name: "KafkaJSGroupCoordinatorNotFound",
      retriable: false,
    });
    emit("crash", { error, restart: false });
    await calls.waitForRun(runs + 1);
    assert.ok(calls.connect >= 2, "connected again before running");
    emit("group_join");
    await adapter.commit([{ topic: "t", partition: 0, offset: "1" }]);
  } finally {
    await adapter.close();
  }
  await failed; // the batches ended without an error: the bridge was not stopped
});

Deno.test("a crash the adapter cannot help (authorization refused) still ends the batches with its error", async () => {
  const { kafka, admin, emit } = standIn();
  const adapter = await startAdapter(kafka, admin, { restartDelayMs: 1 });
  try {
    const error = Object.assign(new Error("Not authorized to access group: g"), {
      name: "KafkaJSProtocolError",
      type: "GROUP_AUTHORIZATION_FAILED",
      retriable: false,
    });
    emit("crash", { error, restart: false });
    await assert.rejects(
      (async () => {
        for await (const _ of adapter.batches()) { /* none come */ }
      })(),
      /Not authorized/,
    );
  } finally {
    await adapter.close();
  }
});
