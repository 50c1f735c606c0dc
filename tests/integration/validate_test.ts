/** `deno task validate` as a user runs it before deploying: a subprocess that connects to nothing. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

async function validate(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", `--config=${root}deno.json`, `${root}scripts/validate.ts`, ...args],
    cwd: root,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp", ...env },
    stdin: "null",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("validate passes the shipped pipelines and their examples, with nothing configured", async () => {
  const { code, stdout, stderr } = await validate([]);
  assert.equal(stderr, "");
  assert.equal(stdout, "validate: ok (3 files, 3 pipelines, 6 examples)\n");
  assert.equal(code, 0);
});

Deno.test("validate passes the shipped examples' pipelines (chaining, windows, avro), as the docs run them", async () => {
  const { code, stdout, stderr } = await validate([], {
    PIPELINES_DIR: "pipelines,pipelines/examples/chaining,pipelines/examples/windows,pipelines/examples/avro",
  });
  assert.equal(stderr, "");
  assert.equal(stdout, "validate: ok (6 files, 6 pipelines, 12 examples)\n");
  assert.equal(code, 0);
});

Deno.test("validate prints file:path: reason for broken files and failing examples, and exits 1", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/a.yaml`,
    "name: a\nsource: {topics: [t]}\nroutes: [{name: r, invoke: {prompt_id: p, timeout: forever}}]\n",
  );
  await Deno.writeTextFile(
    `${dir}/b.yaml`,
    "name: b\nsource: {topics: [t]}\n" +
      "routes: [{name: r, transform: {template: 'Order {id}'}, invoke: {prompt_id: '${B_PROMPT}'}}]\n" +
      "examples: [{value: {id: 1}, expect: {route: r, text: 'Order 2'}}]\n",
  );
  await Deno.writeTextFile(`${dir}/c.yaml`, "name: a\nsource: {topics: [t]\nroutes: []\n");
  const routes = `${dir}/routes.json`;
  await Deno.writeTextFile(routes, '[{"name": "x", "topic_pattern": "t"}]');
  const { code, stdout, stderr } = await validate([dir, routes]);
  assert.equal(code, 1);
  assert.deepEqual(stderr.trim().split("\n"), [
    `${dir}/a.yaml:routes[0].invoke.timeout: "forever" is not a duration (write e.g. 500ms, 30s or 2m)`,
    `${dir}/b.yaml:examples[0].expect.text: expected "Order 2", got "Order 1"`,
    `${dir}/c.yaml:3:1: ${stderr.split(`${dir}/c.yaml:3:1: `)[1]?.split("\n")[0]}`,
    `${routes}:[0].prompt_id: Invalid input: expected string, received undefined`,
    'note: ${B_PROMPT} is not set here; checked as "<B_PROMPT>"',
  ]);
  assert.match(stderr, /c\.yaml:3:1: \S/, "a YAML syntax error names its line and column");
  assert.equal(stdout, "validate: 4 problems (4 files, 1 pipelines, 1 examples)\n");
});

Deno.test("validate checks format settings and Avro examples against their schema files, naming file and field", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.copyFile(`${root}pipelines/examples/avro/payment.avsc`, `${dir}/payment.avsc`);
  await Deno.writeTextFile(`${dir}/bad.avsc`, '{"type": "enum", "name": "S", "symbols": ["a b"]}');
  const pipeline = (name: string, source: string, more: string) =>
    Deno.writeTextFile(
      `${dir}/${name}.yaml`,
      `name: ${name}\nsource: {topics: [payments.events]${source}}\n` +
        "routes: [{name: r, transform: {template: '{payment_id} {amount}'}, invoke: {prompt_id: p}}]\n" + more,
    );
  const example = (schema: string, amount = "'1.5'") =>
    `examples: [{schema: ${schema}, value: {payment_id: P, order_id: O, status: CAPTURED, amount: ${amount}, ` +
    "currency: EUR, at: '2025-01-12T10:00:00Z'}, expect: {route: r, text: P 1.50}}]\n";
  await pipeline("a", ", format: avro", "decode: text\n");
  await pipeline("b", "", example("payment.avsc"));
  await pipeline("c", ", format: avro", example("missing.avsc"));
  await pipeline("d", ", format: avro", example("bad.avsc"));
  await pipeline("e", ", format: avro", example("payment.avsc", "'1.505'"));
  await pipeline("f", ", format: avro", example("payment.avsc"));
  const { code, stdout, stderr } = await validate([dir]);
  assert.deepEqual(stderr.trim().split("\n"), [
    `${dir}/a.yaml:decode: text contradicts source.format avro: a registered record decodes to a value as JSON does (leave decode out)`,
    `${dir}/b.yaml:examples[0].schema: an Avro schema is for a pipeline whose source.format is avro, not auto`,
    `${dir}/c.yaml:examples[0].schema: cannot read ${dir}/missing.avsc: No such file or directory (os error 2): readfile '${dir}/missing.avsc'`,
    `${dir}/d.yaml:examples[0].schema: ${dir}/bad.avsc is not an Avro schema: invalid "S" symbol: "a b"`,
    `${dir}/e.yaml:examples[0].value.amount: "1.505" is not a decimal (digits, at most 2 after the point, 12 in all)`,
  ]);
  assert.equal(stdout, "validate: 5 problems (6 files, 4 pipelines, 4 examples)\n");
  assert.equal(code, 1);
});
