/**
 * The consumer adapter against a stand-in for kafkajs's consumer that does what kafkajs 2.2.4 does
 * while its runner restarts: `commitOffsets` returns without committing and without its
 * COMMIT_OFFSETS event (src/consumer/runner.js, `commitOffsets`: "consumer not running, exiting").
 */
import assert from "node:assert/strict";
import type { Admin, Kafka } from "kafkajs";
import { ConsumerAdapter } from "../../src/kafka/consumer_adapter.ts";

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
  const consumer = {
    events,
    on: (name: string, listener: (event: unknown) => void) => listeners.set(name, listener),
    connect: () => Promise.resolve(),
    subscribe: () => Promise.resolve(),
    run: () => Promise.resolve(),
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
  return { kafka, admin, emit, setRunnerUp: (up: boolean) => runnerUp = up };
}

Deno.test("a commit kafkajs skips while its runner restarts is an error, and a crash is an assignment change", async () => {
  const { kafka, admin, emit, setRunnerUp } = standIn();
  const changes: string[] = [];
  const adapter = new ConsumerAdapter({
    kafka,
    admin,
    groupId: "g",
    subscriptions: ["t"],
    isOutput: () => false,
    fromBeginning: true,
    refreshMs: 60_000,
    onBatch: (batch) => batch,
    onAssignmentChanged: (cause) => changes.push(cause),
    drain: () => Promise.resolve(),
  });
  await adapter.start();
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
