/**
 * @module
 * Reads pipeline files (`pipelines/*.yaml`) or a routes file in the old bridge's JSON format, expands
 * `${VAR}`, validates with the zod schema and returns ready-to-run {@link Pipeline}s. Every problem
 * in every file is reported at once, each as `file:field.path: reason`.
 *
 * @example
 * ```ts
 * import { parsePipelineText } from "./load_pipelines.ts";
 * const { pipelines, problems } = parsePipelineText(
 *   "pipelines/analytics.yaml",
 *   "name: analytics\nsource: { topics: [analytics.events] }\nroutes: [{ name: a, invoke: { prompt_id: p } }]\n",
 *   {},
 *   { maxRetries: 3, retryDelayMs: 1000 },
 * );
 * if (pipelines[0].name !== "analytics" || problems.length) throw new Error(problems.join("\n"));
 * ```
 */
import { parse as parseYaml, YAMLParseError } from "yaml";
import type { z } from "zod";
import { FatalError } from "../errors.ts";
import type { Pipeline } from "../model.ts";
import { exampleProblems } from "../pipeline_examples.ts";
import { registerSecret, registerUrlSecrets } from "../secrets.ts";
import { parseTemplate, type Template } from "../template.ts";
import { expandVariables } from "./expand.ts";
import { type PipelineFile, PipelineFileSchema, SeedRoutesSchema } from "./pipeline_schema.ts";

/** A route's token is a secret: it is kept out of every log line and error message. */
function secret(token: string | undefined): string | undefined {
  registerSecret(token);
  return token;
}

/** What a pipeline takes from the environment when it does not say. */
export interface PipelineDefaults {
  maxRetries: number;
  retryDelayMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;
type Parsed = { pipelines: Pipeline[]; problems: string[] };

/** Formats a field path as `routes[0].invoke.prompt_id`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.map((part, index) => typeof part === "number" ? `[${part}]` : `${index === 0 ? "" : "."}${String(part)}`)
    .join("");
}

function issueLines(file: string, error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = formatPath(issue.path);
    return `${file}:${path || "(top)"}: ${issue.message}`;
  });
}

/** Parses one YAML pipeline file's text. */
export function parsePipelineText(
  file: string,
  text: string,
  env: Env,
  defaults: PipelineDefaults,
): Parsed {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const [line, col] = error.linePos?.[0] ? [error.linePos[0].line, error.linePos[0].col] : [0, 0];
      return { pipelines: [], problems: [`${file}:${line}:${col}: ${error.message.split("\n")[0]}`] };
    }
    throw error;
  }
  return validate(file, raw, env, defaults);
}

/** Parses the text of a routes file in the old bridge's format; each route becomes a pipeline. */
export function parseSeedRoutesText(
  file: string,
  text: string,
  env: Env,
  defaults: PipelineDefaults,
): Parsed {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { pipelines: [], problems: [`${file}: not valid JSON: ${(error as Error).message}`] };
  }
  const { value, problems } = expandVariables(raw, env);
  if (problems.length) {
    return { pipelines: [], problems: problems.map((p) => `${file}:${formatPath(p.path)}: ${p.reason}`) };
  }
  const seed = SeedRoutesSchema.safeParse(value);
  if (!seed.success) return { pipelines: [], problems: issueLines(file, seed.error) };
  const result: Parsed = { pipelines: [], problems: [] };
  for (const route of seed.data) {
    const one = validate(
      file,
      {
        name: route.name,
        source: { topics: [route.topic_pattern] },
        routes: [{
          name: route.name,
          match: {
            ...(route.header_match ? { headers: route.header_match } : {}),
            ...(route.field_match ? { fields: route.field_match } : {}),
          },
          transform: route.transform_template ? { template: route.transform_template } : {},
          invoke: { prompt_id: route.prompt_id },
        }],
      },
      undefined, // expanded above, once: a second pass would undo `$${` escapes
      defaults,
    );
    result.pipelines.push(...one.pipelines);
    result.problems.push(...one.problems);
  }
  return result;
}

/** Validates one pipeline; with `env` undefined, its values are expanded already. */
function validate(
  file: string,
  raw: unknown,
  env: Env | undefined,
  defaults: PipelineDefaults,
): Parsed {
  const { value, problems } = env ? expandVariables(raw, env) : { value: raw, problems: [] };
  if (problems.length) {
    return { pipelines: [], problems: problems.map((p) => `${file}:${formatPath(p.path)}: ${p.reason}`) };
  }
  const parsed = PipelineFileSchema.safeParse(value);
  if (!parsed.success) return { pipelines: [], problems: issueLines(file, parsed.error) };
  return { pipelines: [compile(file, parsed.data, defaults)], problems: [] };
}

function template(source: string): Template {
  const parsed = parseTemplate(source);
  // The schema has already rejected templates that do not parse.
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed;
}

function compile(file: string, spec: PipelineFile, defaults: PipelineDefaults): Pipeline {
  return {
    name: spec.name,
    file,
    topics: spec.source.topics,
    decode: spec.decode,
    format: spec.source.format,
    unmatched: spec.unmatched,
    routes: spec.routes.map((route) => ({
      name: route.name,
      match: route.match ?? {},
      template: route.transform.template === undefined ? undefined : template(route.transform.template),
      ...(route.transform.each === undefined ? {} : { each: template(route.transform.each) }),
      ...(route.window
        ? { window: { by: route.window.by, sizeMs: route.window.size, maxEvents: route.window.max_events } }
        : {}),
      onMissing: route.transform.on_missing,
      agents: route.invoke.url !== undefined
        ? [route.invoke.url].flat().map((url) => ({ url: registerUrlSecrets(url), token: secret(route.invoke.token) }))
        : [route.invoke.prompt_id!].flat().map((promptId) => ({
          promptId,
          ...(route.invoke.a2a ? { a2a: route.invoke.a2a } : {}),
        })),
      timeoutMs: route.invoke.timeout,
      context: route.invoke.context,
      ...(route.invoke.answers
        ? { answers: { topic: template(route.invoke.answers.topic), timeoutMs: route.invoke.answers.timeout } }
        : {}),
      stream: route.invoke.stream,
      longRunning: route.invoke.long_running,
      ...(route.invoke.a2a ? { a2a: route.invoke.a2a } : {}),
    })),
    publish: {
      responses: template(spec.publish.responses),
      dlq: template(spec.publish.dlq),
      format: spec.publish.format === "json" ? "envelope" : spec.publish.format,
      subject: spec.publish.subject,
      autoRegister: spec.publish.auto_register,
    },
    maxHops: spec.chain.max_hops,
    agentLimits: spec.agent_limits.map((limit) => ({
      agent: limit.url !== undefined ? { url: limit.url } : { promptId: limit.prompt_id! },
      concurrency: limit.concurrency,
      rate: limit.rate && { calls: limit.rate.calls, perMs: limit.rate.per },
    })),
    delivery: {
      guarantee: spec.delivery.guarantee,
      ordering: spec.delivery.ordering,
      concurrency: spec.delivery.concurrency,
      maxConcurrency: spec.delivery.concurrency === "auto" ? spec.delivery.max_concurrency : spec.delivery.concurrency,
      ...(spec.delivery.max_in_flight ? { maxInFlight: spec.delivery.max_in_flight } : {}),
      retries: {
        max: spec.delivery.retries.max ?? defaults.maxRetries,
        backoffMs: spec.delivery.retries.backoff ?? defaults.retryDelayMs,
        maxBackoffMs: spec.delivery.retries.max_backoff,
      },
    },
    examples: spec.examples,
  };
}

/** A file to read, and its format: a pipeline file, or a routes file in the old bridge's JSON format. */
export interface PipelineSource {
  file: string;
  format: "pipeline" | "routes";
}

/**
 * The files a configuration names: `routesFile` when given, else every `*.yaml`/`*.yml` in `dir`
 * (a comma-separated list of directories: `pipelines,pipelines/examples/chaining`).
 */
export async function configuredSources(config: { routesFile?: string; dir: string }): Promise<PipelineSource[]> {
  if (config.routesFile) return [{ file: config.routesFile, format: "routes" }];
  const dirs = config.dir.split(",").map((dir) => dir.trim()).filter(Boolean);
  const files = (await Promise.all(dirs.map(listPipelineFiles))).flat();
  return files.map((file) => ({ file, format: "pipeline" }));
}

/**
 * Reads, validates and compiles pipeline files, and runs their examples; returns every problem in
 * every file (unreadable files included) rather than stopping at the first. Connects to nothing.
 */
export async function readPipelines(
  sources: readonly PipelineSource[],
  env: Env,
  defaults: PipelineDefaults,
): Promise<Parsed> {
  const result: Parsed = { pipelines: [], problems: [] };
  for (const { file, format } of sources) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      result.problems.push(`${file}: cannot read: ${(error as Error).message}`);
      continue;
    }
    const parsed = format === "routes"
      ? parseSeedRoutesText(file, text, env, defaults)
      : parsePipelineText(file, text, env, defaults);
    result.pipelines.push(...parsed.pipelines);
    result.problems.push(...parsed.problems, ...(await Promise.all(parsed.pipelines.map(exampleProblems))).flat());
  }
  const seen = new Map<string, string>();
  for (const pipeline of result.pipelines) {
    const earlier = seen.get(pipeline.name);
    if (earlier) {
      result.problems.push(`${pipeline.file}:name: pipeline "${pipeline.name}" is also defined in ${earlier}`);
    }
    seen.set(pipeline.name, pipeline.file);
  }
  return result;
}

/**
 * Loads the configured pipelines (see {@link configuredSources}). Throws a {@link FatalError}
 * listing every problem; reads files, connects to nothing.
 */
export async function loadPipelines(
  config: { routesFile?: string; dir: string },
  env: Env,
  defaults: PipelineDefaults,
): Promise<Pipeline[]> {
  const { pipelines, problems } = await readPipelines(await configuredSources(config), env, defaults);
  if (problems.length) throw new FatalError(problems, { config: true });
  return pipelines;
}

async function listPipelineFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir.replace(/\/+$/, "")}/${entry.name}`;
      if (!/\.ya?ml$/.test(entry.name) || entry.isDirectory) continue;
      // Mounted config maps are symlinks: follow them.
      if (entry.isFile || (entry.isSymlink && (await Deno.stat(path)).isFile)) files.push(path);
    }
  } catch (error) {
    throw new FatalError(`${dir}: cannot read the pipelines directory: ${(error as Error).message}`, {
      config: true,
    });
  }
  if (!files.length) throw new FatalError(`${dir}: no pipeline files (*.yaml) found`, { config: true });
  return files.sort();
}
