import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { Circuit } from "../../src/a2a/circuit.ts";

Deno.test("Circuit opens after the threshold of transient failures in a row, not before", () => {
  const changes: boolean[] = [];
  const circuit = new Circuit({ threshold: 3, onChange: (open) => changes.push(open) });
  circuit.failed();
  circuit.failed();
  circuit.succeeded();
  circuit.failed();
  circuit.failed();
  assert.equal(circuit.open, false, "a success in between starts the count again");
  circuit.failed();
  assert.equal(circuit.open, true);
  assert.deepEqual(changes, [true]);
});

Deno.test("an open Circuit holds callers, lets one probe through with doubling pauses, and closes on success", async () => {
  const clock = FakeTimers.withGlobal(globalThis).install({ toFake: ["setTimeout", "clearTimeout"] });
  try {
    const changes: boolean[] = [];
    const circuit = new Circuit({ threshold: 1, probeDelayMs: 100, onChange: (open) => changes.push(open) });
    circuit.failed();
    const roles: string[] = [];
    const first = circuit.acquire().then((role) => roles.push(`first:${role}`));
    const second = circuit.acquire().then((role) => roles.push(`second:${role}`));
    await clock.tickAsync(99);
    assert.deepEqual(roles, [], "nobody passes before the probe delay");
    await clock.tickAsync(1);
    assert.deepEqual(roles, ["first:probe"]);
    circuit.failed("probe");
    await clock.tickAsync(199);
    assert.deepEqual(roles, ["first:probe"], "the next probe waits twice as long");
    await clock.tickAsync(1);
    assert.deepEqual(roles, ["first:probe", "second:probe"]);
    circuit.succeeded();
    await Promise.all([first, second]);
    assert.equal(circuit.open, false);
    assert.equal(await circuit.acquire(), "call");
    assert.deepEqual(changes, [true, false]);
  } finally {
    clock.uninstall();
  }
});

Deno.test("an aborted caller stops waiting on an open Circuit", async () => {
  const circuit = new Circuit({ threshold: 1, probeDelayMs: 60_000 });
  circuit.failed();
  const abort = new AbortController();
  const waiting = circuit.acquire(abort.signal);
  abort.abort();
  assert.equal(await waiting, "call");
  circuit.dispose();
});

Deno.test("a refusal opens the Circuit at once, in the refused state, and a refused probe doubles the pause", async () => {
  const clock = FakeTimers.withGlobal(globalThis).install({ toFake: ["setTimeout", "clearTimeout"] });
  try {
    const changes: string[] = [];
    const circuit = new Circuit({
      threshold: 5,
      probeDelayMs: 100,
      onChange: (open, state, reason) => changes.push(`${open}:${state}:${reason ?? ""}`),
    });
    circuit.refused("call", "bad token");
    circuit.refused("call", "bad token");
    assert.equal(circuit.state, "refused");
    assert.deepEqual(changes, ["true:refused:bad token"], "one change, however many calls are refused");
    const roles: string[] = [];
    const first = circuit.acquire().then((role) => roles.push(`first:${role}`));
    const second = circuit.acquire().then((role) => roles.push(`second:${role}`));
    await clock.tickAsync(100);
    assert.deepEqual(roles, ["first:probe"]);
    circuit.refused("probe", "bad token");
    await clock.tickAsync(199);
    assert.deepEqual(roles, ["first:probe"], "the next probe waits twice as long");
    await clock.tickAsync(1);
    assert.deepEqual(roles, ["first:probe", "second:probe"]);
    circuit.succeeded();
    await Promise.all([first, second]);
    assert.deepEqual(changes, ["true:refused:bad token", "false:closed:"]);
  } finally {
    clock.uninstall();
  }
});

Deno.test("an open circuit holds (pauses its routes) only while callers wait on it", async () => {
  let changed = Promise.withResolvers<boolean>();
  const circuit = new Circuit({
    threshold: 1,
    probeDelayMs: 60_000,
    onHolding: (holding) => {
      changed.resolve(holding);
      changed = Promise.withResolvers<boolean>();
    },
  });
  try {
    circuit.trip();
    const stop = new AbortController();
    const waiting = circuit.acquire(stop.signal);
    assert.equal(await changed.promise, true, "a caller waits: its routes pause");
    stop.abort();
    await waiting;
    assert.equal(await changed.promise, false, "nobody waits: the next message may come in to probe");
    assert.equal(circuit.open, true, "still open");
  } finally {
    circuit.dispose();
  }
});
