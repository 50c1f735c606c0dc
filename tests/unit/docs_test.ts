import assert from "node:assert/strict";
import { GENERATED_DOCUMENTS, pipelineJsonSchema, withGeneratedSections } from "../../src/config/reference.ts";
import { SHIPPED_SCHEMAS } from "../../src/registry/reply_schema.ts";

/** Formats Markdown as `deno fmt` does, so the comparison ignores table padding. */
async function fmt(markdown: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(markdown));
  await writer.close();
  return new TextDecoder().decode((await child.output()).stdout);
}

for (const path of Object.keys(GENERATED_DOCUMENTS)) {
  Deno.test(`${path}: its generated tables come from the current schemas`, async () => {
    const document = await Deno.readTextFile(path);
    assert.equal(await fmt(withGeneratedSections(path, document)), document, "run `deno task docs`");
  });
}

Deno.test("config/pipeline.schema.json is generated from the current schema", async () => {
  const schema = JSON.parse(await Deno.readTextFile("config/pipeline.schema.json"));
  assert.deepEqual(schema, pipelineJsonSchema(), "run `deno task docs`");
});

for (const [path, schema] of Object.entries(SHIPPED_SCHEMAS)) {
  Deno.test(`${path} is the shipped reply schema`, async () => {
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), schema, "run `deno task docs`");
  });
}

Deno.test("withGeneratedSections() refuses a document without its markers, and one it does not know", () => {
  assert.throws(() => withGeneratedSections("docs/configuration.md", "# Configuration\n"), /markers for environment/);
  assert.throws(() => withGeneratedSections("README.md", "# agentstream\n"), /no generated sections/);
});
