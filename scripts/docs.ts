/** `deno task docs`: writes config/pipeline.schema.json and the README's generated tables. */
import { pipelineJsonSchema, withGeneratedSections } from "../src/config/reference.ts";

await Deno.writeTextFile("config/pipeline.schema.json", JSON.stringify(pipelineJsonSchema(), null, 2) + "\n");
const readme = await Deno.readTextFile("README.md");
await Deno.writeTextFile("README.md", withGeneratedSections(readme));
console.log("wrote config/pipeline.schema.json and README.md's generated sections");
