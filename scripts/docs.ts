/**
 * `deno task docs`: writes config/pipeline.schema.json, the reply envelope's registered schemas in
 * config/schemas/ (see SHIPPED_SCHEMAS) and the generated tables in docs/ (see GENERATED_DOCUMENTS).
 */
import { GENERATED_DOCUMENTS, pipelineJsonSchema, withGeneratedSections } from "../src/config/reference.ts";
import { SHIPPED_SCHEMAS } from "../src/registry/reply_schema.ts";

await Deno.writeTextFile("config/pipeline.schema.json", JSON.stringify(pipelineJsonSchema(), null, 2) + "\n");
for (const [path, schema] of Object.entries(SHIPPED_SCHEMAS)) {
  await Deno.writeTextFile(path, JSON.stringify(schema, null, 2) + "\n");
}
const paths = Object.keys(GENERATED_DOCUMENTS);
for (const path of paths) {
  await Deno.writeTextFile(path, withGeneratedSections(path, await Deno.readTextFile(path)));
}
console.log(
  `wrote config/pipeline.schema.json, ${Object.keys(SHIPPED_SCHEMAS).join(", ")} and the generated sections of ${
    paths.join(", ")
  }`,
);
