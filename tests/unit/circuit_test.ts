import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { AgentCircuits } from "../../src/a2a/agent_circuits.ts";
import { Circuit } from "../../src/circuit.ts";

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

Deno.test("a first call's own failure is no evidence of an outage; the same message failing again is", () => {
  const circuit = new Circuit({ threshold: 3 });
  // A burst whose provider rate-limits every request's first call: none of these says the agent is down.
  for (let n = 0; n < 50; n++) circuit.failed("call", { evidence: false });
  assert.equal(circuit.open, false);
  circuit.failed("call");
  circuit.failed("call", { evidence: false });
  circuit.failed("call");
  assert.equal(circuit.open, false, "two retries failed, and first calls between them do not count");
  circuit.failed("call");
  assert.equal(circuit.state, "down");
  assert.equal(circuit.unreachable, false, "down because its calls fail, not because it cannot be reached");
  circuit.dispose();
});

Deno.test("a Circuit opened by unreachable failures alone says so; one mixed with answered failures does not", () => {
  const unreachable = new Circuit({ threshold: 2 });
  unreachable.failed("call", { unreachable: true });
  unreachable.failed("call", { unreachable: true });
  assert.equal(unreachable.unreachable, true);
  const mixed = new Circuit({ threshold: 2 });
  mixed.failed("call", { unreachable: true });
  mixed.failed("call");
  assert.equal(mixed.open && !mixed.unreachable, true);
  const tripped = new Circuit({ threshold: 5 });
  tripped.trip();
  assert.equal(tripped.unreachable, true, "tripped: not even the card answered");
});

Deno.test("an open Circuit chooses a waiting retry as its probe before any first call", async () => {
  const clock = FakeTimers.withGlobal(globalThis).install({ toFake: ["setTimeout", "clearTimeout"] });
  try {
    const circuit = new Circuit({ threshold: 1, probeDelayMs: 100 });
    circuit.failed();
    const roles: string[] = [];
    const firsts = [1, 2, 3].map((n) => circuit.acquire().then((role) => roles.push(`first ${n}:${role}`)));
    const retry = circuit.acquire(undefined, { retry: true }).then((role) => roles.push(`retry:${role}`));
    await clock.tickAsync(100);
    assert.deepEqual(roles, ["retry:probe"], "the message that failed once is the probe");
    circuit.succeeded();
    await Promise.all([...firsts, retry]);
    assert.deepEqual(roles.slice(1).sort(), ["first 1:call", "first 2:call", "first 3:call"]);
  } finally {
    clock.uninstall();
  }
});

Deno.test("a probe that will not be made after all passes to the next waiter at the same pause", async () => {
  const clock = FakeTimers.withGlobal(globalThis).install({ toFake: ["setTimeout", "clearTimeout"] });
  try {
    const circuit = new Circuit({ threshold: 1, probeDelayMs: 100 });
    circuit.failed();
    const roles: string[] = [];
    const first = circuit.acquire().then((role) => (roles.push(`first:${role}`), role));
    const second = circuit.acquire().then((role) => roles.push(`second:${role}`));
    await clock.tickAsync(100);
    circuit.skipped(await first);
    await clock.tickAsync(99);
    assert.deepEqual(roles, ["first:probe"]);
    await clock.tickAsync(1);
    assert.deepEqual(roles, ["first:probe", "second:probe"], "no doubling: the skipped probe said nothing");
    circuit.succeeded();
    await second;
  } finally {
    clock.uninstall();
  }
});

Deno.test("AgentCircuits: one agent failing every call opens its own circuit; several unreachable open the host's", () => {
  const changes: string[] = [];
  const circuits = new AgentCircuits({
    threshold: 2,
    onChange: ({ key, state }) => changes.push(`${key}:${state}`),
    onHolding: () => {},
  });
  const url = (id: string) => `http://archestra.local:9000/v2/a2a/${id}`;
  circuits.agent(url("failing")).failed("call");
  circuits.agent(url("failing")).failed("call");
  assert.equal(circuits.agent(url("failing")).state, "down");
  assert.equal(circuits.agent(url("healthy")).open, false);
  assert.equal(circuits.host(url("healthy")).open, false, "one prompt's provider failing is not the host");
  circuits.agent(url("a")).failed("call", { unreachable: true });
  circuits.agent(url("a")).failed("call", { unreachable: true });
  assert.equal(circuits.host(url("healthy")).open, false, "one unreachable agent is not yet the host");
  circuits.agent(url("b")).failed("call", { unreachable: true });
  circuits.agent(url("b")).failed("call", { unreachable: true });
  assert.equal(circuits.host(url("healthy")).open, true, "two unreachable agents: the host is down");
  assert.equal(circuits.host("http://other.local:9000/v2/a2a/x").open, false, "another host flows");
  assert.deepEqual(changes, [
    `agent ${url("failing")}:down`,
    `agent ${url("a")}:down`,
    `agent ${url("b")}:down`,
    "host http://archestra.local:9000:down",
  ]);
  circuits.host(url("healthy")).succeeded();
  assert.equal(circuits.host(url("healthy")).open, false, "any answer closes the host's circuit");
  circuits.dispose();
});

Deno.test("a host's Circuit probes with a caller whose own agent's circuit is closed, before any retry held back by its own", async () => {
  const clock = FakeTimers.withGlobal(globalThis).install({ toFake: ["setTimeout", "clearTimeout"] });
  try {
    const host = new Circuit({ threshold: 1, probeDelayMs: 100 });
    host.failed("call", { unreachable: true });
    const roles: string[] = [];
    const held = host.acquire(undefined, { retry: true, ready: () => false }).then((r) => roles.push(`held:${r}`));
    const free = host.acquire(undefined, { ready: () => true }).then((r) => roles.push(`free:${r}`));
    await clock.tickAsync(100);
    assert.deepEqual(roles, ["free:probe"]);
    host.succeeded();
    await Promise.all([held, free]);
  } finally {
    clock.uninstall();
  }
});

Deno.test("a probe answered with another kind of failure says the agent is no longer unreachable", () => {
  const circuit = new Circuit({ threshold: 1 });
  circuit.failed("call", { unreachable: true });
  assert.equal(circuit.unreachable, true);
  circuit.failed("probe", { unreachable: false });
  assert.equal(circuit.open && !circuit.unreachable, true);
  circuit.dispose();
});
