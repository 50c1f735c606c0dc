/**
 * `deno task validate [files or directories…]`: checks pipeline files without connecting to
 * anything, and runs their `examples:`. Prints `file:path: reason` for each problem (stderr) and a
 * summary (stdout); exits 1 when there are problems. Without arguments it checks what `deno task
 * start` would load (PIPELINES_DIR, or PIPELINES_ROUTES_FILE). `*.json` files are read in the old
 * bridge's routes format.
 *
 * `${VAR}` is expanded from the environment and `.env`; a variable that is unset is not a problem of
 * the file (the deployment sets it): it is reported as a note and checked with a stand-in value.
 */
import { DEMO_PROMPT_IDS } from "../src/agent/demo_agent.ts";
import { readDotEnv } from "../src/config/dotenv.ts";
import { standInEnv } from "../src/config/expand.ts";
import { configuredSources, type PipelineSource, readPipelines } from "../src/config/load_pipelines.ts";
import { loadSettings } from "../src/config/settings.ts";
import { runCommand } from "../src/errors.ts";

async function sourcesFrom(args: string[]): Promise<PipelineSource[]> {
  const sources: PipelineSource[] = [];
  for (const arg of args) {
    let isDirectory = false;
    try {
      isDirectory = (await Deno.stat(arg)).isDirectory;
    } catch { /* a missing file is reported by readPipelines, as a problem of that file */ }
    if (isDirectory) sources.push(...await configuredSources({ dir: arg }));
    else sources.push({ file: arg, format: arg.endsWith(".json") ? "routes" : "pipeline" });
  }
  return sources;
}

async function main(): Promise<number> {
  const env = { ...await readDotEnv(".env"), ...Deno.env.toObject() };
  const settings = loadSettings(env);
  const sources = Deno.args.length
    ? await sourcesFrom(Deno.args)
    : await configuredSources({ routesFile: settings.routesConfigFile, dir: settings.pipelinesDir });
  const unset = new Set<string>();
  // As at start-up: with no ARCHESTRA_URL the demo agent's prompt ids stand in.
  const base = settings.demoAgent ? { ...DEMO_PROMPT_IDS, ...env } : env;
  const { pipelines, problems } = await readPipelines(sources, standInEnv(base, unset), settings);
  for (const problem of problems) console.error(problem);
  for (const name of [...unset].sort()) console.error(`note: \${${name}} is not set here; checked as "<${name}>"`);
  const examples = pipelines.reduce((sum, p) => sum + p.examples.length, 0);
  const counts = `${sources.length} files, ${pipelines.length} pipelines, ${examples} examples`;
  console.log(problems.length ? `validate: ${problems.length} problems (${counts})` : `validate: ok (${counts})`);
  return problems.length ? 1 : 0;
}

await runCommand(main);
