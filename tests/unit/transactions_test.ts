/**
 * Exactly-once commits against a stand-in for kafkajs's transactional producer, for what the
 * broker answers while another member takes a partition over (or finishes the last transaction).
 */
import assert from "node:assert/strict";
import type { Commit } from "../../src/delivery/ledger.ts";
import type { PartitionProducers } from "../../src/kafka/partition_producers.ts";
import { TransactionalOutput } from "../../src/kafka/transactions.ts";
import { OutputTopics } from "../../src/kafka/output_topics.ts";

/** What the broker answers while the transaction coordinator is still completing a transaction of this id. */
const concurrent = () =>
  Object.assign(
    new Error(
      "The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing",
    ),
    { type: "CONCURRENT_TRANSACTIONS", code: 51, retriable: true },
  );

/** What the broker answers when a request met an error it did not expect. */
const unknown = () =>
  Object.assign(new Error("The server experienced an unexpected error when processing the request"), {
    type: "UNKNOWN_SERVER_ERROR",
    code: -1,
    retriable: false,
  });

/**
 * A partition's producer whose transactions fail as `fail` says, step by step (`send`, `offsets`,
 * `commit`: that many times, with `error`); its abort fails after a failed commit, as kafkajs's does
 * (its state machine is left in COMMITTING).
 */
function standIn(fail: { send?: number; offsets?: number; commit?: number }, error = concurrent) {
  const calls: string[] = [];
  const released: string[] = [];
  let committing = false;
  const step = (name: "send" | "offsets" | "commit") => {
    calls.push(name);
    if (name === "commit") committing = true;
    if ((fail[name] ?? 0) > 0) {
      fail[name]!--;
      return Promise.reject(error());
    }
    committing = false;
    return Promise.resolve();
  };
  const transaction = {
    sendBatch: () => step("send"),
    sendOffsets: () => step("offsets"),
    commit: () => step("commit"),
    abort: () => {
      calls.push("abort");
      return committing
        ? Promise.reject(new Error("Transaction state exception: Invalid state COMMITTING"))
        : Promise.resolve();
    },
  };
  const producers = {
    claimed: () => Promise.resolve({ transaction: () => Promise.resolve(transaction) }),
    release: (topic: string, partition: number) => (released.push(`${topic}/${partition}`), Promise.resolve()),
  } as unknown as PartitionProducers;
  return { producers, calls, released };
}

const offset = { topic: "t", partition: 0, offset: "5" };
const commit: Commit = {
  offsets: [offset],
  records: [],
  parts: [{ offset, records: [{ topic: "t.responses", record: { key: null, value: new Uint8Array(), headers: {} } }] }],
};

Deno.test("offsets refused as concurrent (the last transaction still completing) are sent again", async () => {
  const { producers, calls } = standIn({ offsets: 2 });
  let fenced = 0;
  const output = new TransactionalOutput(producers, "g", undefined, () => fenced++);
  assert.deepEqual(await output.commit(commit), commit);
  assert.deepEqual(calls, ["send", "offsets", "offsets", "offsets", "commit"]);
  assert.equal(fenced, 0);
});

Deno.test("a commit refused as concurrent (another member is taking the partition over) is left to it, not fatal", async () => {
  const { producers, calls, released } = standIn({ commit: 1 });
  let fenced = 0;
  const output = new TransactionalOutput(producers, "g", undefined, () => fenced++);
  const stored = await output.commit(commit);
  assert.deepEqual(stored.offsets, [], "nothing committed for that partition");
  assert.deepEqual(calls, ["send", "offsets", "commit", "abort"]);
  assert.deepEqual(released, ["t/0"], "its producer, broken now, closed");
  assert.equal(fenced, 1);
});

Deno.test("a transaction that failed before its commit, and was aborted, is sent again", async () => {
  const { producers, calls } = standIn({ send: 1 }, unknown);
  const output = new TransactionalOutput(producers, "g");
  assert.deepEqual(await output.commit(commit), commit);
  assert.deepEqual(calls, ["send", "abort", "send", "offsets", "commit"]);
});

Deno.test("a commit that failed in EndTxn (a new owner's epoch fence under way) is not sent again, but left to the group", async () => {
  // The broker answers UNKNOWN_SERVER_ERROR to an EndTxn that meets a new owner's InitProducerId
  // ("Preparing transaction state transition to ONGOING while it already a pending state PREPARE_EPOCH_FENCE").
  const { producers, calls, released } = standIn({ commit: 1 }, unknown);
  let fenced = 0;
  const output = new TransactionalOutput(producers, "g", undefined, () => fenced++);
  const committed = await output.commit(commit);
  assert.deepEqual(committed.offsets, [], "not reported as committed: whoever owns it next reads its offset");
  assert.deepEqual(calls, ["send", "offsets", "commit", "abort"], "not sent again: it may have committed");
  assert.equal(fenced, 1, "the member restarts if no rebalance follows");
  assert.deepEqual(released, ["t/0"]);
});

Deno.test("a transaction that keeps failing before its commit is fatal after three tries", async () => {
  const { producers, calls } = standIn({ send: 5 }, unknown);
  const output = new TransactionalOutput(producers, "g");
  await assert.rejects(output.commit(commit), /unexpected error/);
  assert.deepEqual(calls, ["send", "abort", "send", "abort", "send", "abort"]);
});

Deno.test("a transaction refused for a topic that cannot be written is aborted and held, then goes with the partition's next commit", async () => {
  const denied = () =>
    Object.assign(new Error("Not authorized to access topics"), {
      type: "TOPIC_AUTHORIZATION_FAILED",
      code: 29,
      retriable: false,
    });
  const { producers, calls } = standIn({ send: 1 }, denied);
  const changes: string[] = [];
  const holding: string[] = [];
  const outputs = new OutputTopics({
    probeDelayMs: 0,
    onChange: (topic, reason) => changes.push(`${topic} ${reason ?? "writable"}`),
    onHolding: (topic, on) => holding.push(`${topic} ${on}`),
  });
  const output = new TransactionalOutput(producers, "g", undefined, () => {}, outputs);
  const stored = await output.commit(commit);
  assert.deepEqual(stored.offsets, [], "held: not committed");
  assert.deepEqual(calls, ["send", "abort"], "not sent again at once");
  assert.deepEqual(changes, ["t.responses denied"]);
  assert.deepEqual(holding, ["t.responses true"]);
  assert.deepEqual(outputs.unwritable, [{ topic: "t.responses", reason: "denied" }]);
  // The partition's next commit carries the held records first, at its later offset.
  const later = { topic: "t", partition: 0, offset: "6" };
  const record = { key: null, value: new Uint8Array(1), headers: {} };
  const next: Commit = {
    offsets: [later],
    records: [],
    parts: [{ offset: later, records: [{ topic: "t.responses", record }] }],
  };
  const flushed = await output.commit(next);
  assert.deepEqual(flushed.offsets, [later]);
  assert.deepEqual(
    flushed.parts[0].records.map((r) => r.record.value.length),
    [0, 1],
    "the held record, then the later one",
  );
  assert.deepEqual(changes, ["t.responses denied", "t.responses writable"]);
  assert.deepEqual(holding, ["t.responses true", "t.responses false"]);
  outputs.dispose();
});
