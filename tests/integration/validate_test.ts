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

Deno.test("validate passes the shipped examples' pipelines (chaining, windows), as the README runs them", async () => {
  const { code, stdout, stderr } = await validate([], {
    PIPELINES_DIR: "pipelines,pipelines/examples/chaining,pipelines/examples/windows",
  });
  assert.equal(stderr, "");
  assert.equal(stdout, "validate: ok (5 files, 5 pipelines, 10 examples)\n");
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
