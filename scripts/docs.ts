/** `deno task docs`: writes config/pipeline.schema.json and the generated tables in docs/ (see GENERATED_DOCUMENTS). */
import { GENERATED_DOCUMENTS, pipelineJsonSchema, withGeneratedSections } from "../src/config/reference.ts";

await Deno.writeTextFile("config/pipeline.schema.json", JSON.stringify(pipelineJsonSchema(), null, 2) + "\n");
const paths = Object.keys(GENERATED_DOCUMENTS);
for (const path of paths) {
  await Deno.writeTextFile(path, withGeneratedSections(path, await Deno.readTextFile(path)));
}
console.log(`wrote config/pipeline.schema.json and the generated sections of ${paths.join(", ")}`);
