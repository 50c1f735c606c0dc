/**
 * The named parts the composition root wires: the lifecycle's stop order, the caps, and the
 * rebalance listener, each alone (the integration tests run them together against a broker).
 */
import assert from "node:assert/strict";
import { parsePipelineText } from "../../src/config/load_pipelines.ts";
import { CallGate } from "../../src/delivery/call_gate.ts";
import { Caps } from "../../src/delivery/caps.ts";
import { Commits } from "../../src/delivery/commits.ts";
import { FlowControl, type PauseReason } from "../../src/delivery/flow_control.ts";
import { Ledger } from "../../src/delivery/ledger.ts";
import { Rebalance } from "../../src/delivery/rebalance.ts";
import { FatalError } from "../../src/errors.ts";
import { Lifecycle } from "../../src/lifecycle.ts";

const pipeline = (name: string, maxInFlight: number) =>
  parsePipelineText(
    `${name}.yaml`,
    `name: ${name}\nsource: {topics: [${name}]}\nroutes: [{name: r, invoke: {prompt_id: x}}]\n` +
      `delivery: {max_in_flight: ${maxInFlight}}\n`,
    {},
    { maxRetries: 1, retryDelayMs: 10 },
  ).pipelines[0];

Deno.test("Lifecycle: a stop runs its phases in order once, cuts the work in flight at the grace period, and says why it stopped", async () => {
  const order: string[] = [];
  const life = new Lifecycle({ graceMs: 50 });
  const work = Promise.withResolvers<void>();
  life.running(work.promise);
  life.on("disconnect", () => order.push("disconnect"));
  life.on("release", () => order.push("release"));
  life.on("commit", () => order.push("commit"));
  life.on("intake", () => order.push("intake"));
  // The work ends only when the grace period cuts it.
  life.cut.addEventListener("abort", () => work.reject(new Error("cut short")));
  const first = life.stop();
  assert.equal(life.stop(), first, "one stop, however often asked");
  assert.equal(life.stopping.aborted, true, "waits end at once");
  await assert.rejects(first, (error: FatalError) => {
    assert.match(error.message, /stopped: cut short/);
    return true;
  });
  assert.deepEqual(order, ["intake", "release", "commit", "disconnect"]);
  assert.equal(life.cut.aborted, true);
});

Deno.test("Lifecycle: a stop's reason wins over the work's outcome, and a disconnect that fails does not keep the others from running", async () => {
  const life = new Lifecycle({ graceMs: 1_000 });
  const closed: string[] = [];
  life.on("disconnect", () => Promise.reject(new Error("broker gone")));
  life.on("disconnect", () => closed.push("producer"));
  await assert.rejects(life.stop(new FatalError("a transaction failed")), /a transaction failed/);
  assert.deepEqual(closed, ["producer"]);
});

Deno.test("Caps: a pipeline's cap pauses only its topics and resumes at half; the process's cap pauses every topic", () => {
  const [a, b] = [pipeline("a", 4), pipeline("b", 100)];
  const ledger = new Ledger();
  const reasons: (readonly PauseReason[])[] = [];
  const flow = new FlowControl({
    topicsOf: (reason) => reason.kind === "pipeline" ? [reason.pipeline] : ["a", "b"],
    apply: () => void reasons.push(flow.reasons),
  });
  let pauses = 0;
  const caps = new Caps({
    ledger,
    flow,
    pipelines: [a, b],
    targets: (topic) => topic === "a" ? [a] : [b],
    maxInFlight: 10,
    maxUncommittedBytes: 1e6,
    onPaused: () => pauses++,
  });
  const acks = ledger.receive("a", 0, ["0", "1", "2", "3"], ["a"]);
  caps.check();
  assert.equal(flow.paused("a"), true);
  assert.equal(flow.paused("b"), false, "another pipeline's topic flows");
  assert.equal(caps.room("a", 0), 0);
  assert.equal(caps.room("b", 0), 6, "what the process's cap leaves");
  assert.equal(pauses, 1);
  acks("0", "a").done();
  caps.check();
  assert.equal(flow.paused("a"), true, "above half: still paused");
  acks("1", "a").done();
  caps.check();
  assert.equal(flow.paused("a"), false, "at half: resumed");
  ledger.receive("b", 0, ["0", "1", "2", "3", "4", "5", "6", "7"], ["b"]);
  caps.check();
  assert.equal(flow.holds({ kind: "in-flight" }), true);
  assert.equal(flow.paused("a") && flow.paused("b"), true);
  caps.close();
  assert.equal(caps.room("b", 1), 0, "nothing is taken in once closed");
});

Deno.test("Rebalance: a join keeps carried offsets of owned partitions only, a resubscription's drain waits for the calls made, then reopens the gate", async () => {
  const ledger = new Ledger();
  const written: string[][] = [];
  let fail = true;
  const commits = new Commits({
    ledger,
    write: ({ offsets }) => {
      if (fail) return Promise.reject(new Error("rebalance in progress"));
      written.push(offsets.map((o) => `${o.topic}/${o.partition}@${o.offset}`).sort());
      return Promise.resolve();
    },
    fatal: () => {},
  });
  const flow = new FlowControl({ topicsOf: () => [], apply: () => {} });
  const caps = new Caps({ ledger, flow, pipelines: [], targets: () => [], maxInFlight: 10, maxUncommittedBytes: 1e6 });
  const gate = new CallGate();
  const rebalance = new Rebalance({
    ledger,
    commits,
    caps,
    flow,
    gate,
    drainMs: 5_000,
    stopping: new AbortController().signal,
  });
  const kinds: string[] = [];
  rebalance.onChange(({ kind }) => kinds.push(kind));
  // Finished on two partitions; the commit fails, so both offsets are carried.
  ledger.receive("t", 0, ["0"], ["p"])("0", "p").done();
  ledger.receive("t", 1, ["0"], ["p"])("0", "p").done();
  await commits.now();
  // The group rebalances: what is finished is committed (it fails again, so it is carried) and the rest dropped.
  rebalance.partitionsChanged({ kind: "rebalance", cause: "rebalancing", revoked: [{ topic: "t", partition: 0 }] });
  await commits.now();
  // A join gives back partition 1 only: partition 0's carried offset is not committed on another's behalf.
  fail = false;
  rebalance.partitionsChanged({ kind: "join", cause: "joined", revoked: [], assigned: [{ topic: "t", partition: 1 }] });
  await commits.now();
  assert.deepEqual(written, [["t/1@1"]]);
  assert.deepEqual(kinds, ["rebalance", "join"]);

  // A resubscription: no new call passes the gate until the drain is over and the source subscribed again.
  const pass = await gate.enter();
  const acks = ledger.receive("t", 1, ["1"], ["p"]);
  let drained = false;
  const draining = rebalance.drain().then(() => drained = true);
  const waiting = gate.enter();
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(drained, false, "the call made is waited for");
  acks("1", "p").done();
  pass();
  await draining;
  assert.deepEqual(written.at(-1), ["t/1@2"], "and its outcome committed before the source leaves the group");
  let passed = false;
  void waiting.then(() => passed = true);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(passed, false, "the gate stays closed until the source subscribed again");
  rebalance.partitionsChanged({ kind: "resubscribe", cause: "subscribing again", revoked: [] });
  (await waiting)();
  assert.equal(passed, true);
});
