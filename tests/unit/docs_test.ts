import assert from "node:assert/strict";
import { pipelineJsonSchema, withGeneratedSections } from "../../src/config/reference.ts";

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

Deno.test("README tables and config/pipeline.schema.json are generated from the current schemas", async () => {
  const readme = await Deno.readTextFile("README.md");
  assert.equal(await fmt(withGeneratedSections(readme)), readme, "run `deno task docs`");
  const schema = JSON.parse(await Deno.readTextFile("config/pipeline.schema.json"));
  assert.deepEqual(schema, pipelineJsonSchema(), "run `deno task docs`");
});
