/**
 * @module
 * `deno task check` runs this: the import graph of `src/` keeps its layers. Modules import each
 * other in no circle, each layer imports only what it may (see {@link RULES}), and the production
 * entry point loads demo and local-infrastructure code only dynamically, when an embedded default is
 * used. The graph is Deno's own (`deno info --json`).
 *
 * @example
 * ```ts
 * import { layerProblems } from "./check_layers.ts";
 * const graph = new Map([
 *   ["src/stages/invoke.ts", { imports: ["src/kafka/sink.ts"], dynamic: [] }],
 *   ["src/kafka/sink.ts", { imports: ["src/stages/invoke.ts"], dynamic: [] }],
 * ]);
 * const problems = layerProblems(graph, "src/main.ts");
 * if (!problems.some((p) => p.startsWith("circle"))) throw new Error("the circle went unseen");
 * if (!problems.some((p) => p.includes("stages/ may not import src/kafka/"))) throw new Error("the layer went unseen");
 * ```
 */

/** What a module imports: statically, and through `import()`. Paths relative to the repository. */
export interface ModuleImports {
  imports: string[];
  dynamic: string[];
}

interface Rule {
  /** The layer: a directory under `src/`, or a module. */
  layer: string;
  /** What it may not import (directories end with a slash). */
  not: string[];
  why: string;
}

/** What each layer may not import, and why. */
export const RULES: readonly Rule[] = [
  {
    layer: "src/delivery/",
    not: ["src/kafka/", "src/stages/", "src/a2a/", "src/ops/", "src/agent/", "src/infra/", "src/registry/"],
    why: "delivery bookkeeping owns the interfaces the others implement",
  },
  {
    layer: "src/kafka/",
    not: ["src/stages/", "src/a2a/", "src/ops/", "src/agent/", "src/infra/"],
    why: "the Kafka client implements delivery's interfaces and knows no stage or agent",
  },
  {
    layer: "src/stages/",
    not: ["src/kafka/", "src/agent/", "src/infra/"],
    why: "stages depend on delivery's interfaces, never on the Kafka client",
  },
  {
    layer: "src/a2a/",
    not: ["src/kafka/", "src/stages/", "src/ops/", "src/agent/", "src/infra/"],
    why: "A2A calls know nothing of Kafka or the stages that use them",
  },
  {
    layer: "src/registry/",
    not: ["src/kafka/", "src/stages/", "src/a2a/", "src/ops/", "src/agent/", "src/infra/", "src/delivery/"],
    why: "decoding with a registered schema knows nothing of Kafka clients, stages or delivery",
  },
  {
    layer: "src/ops/",
    not: ["src/kafka/", "src/stages/", "src/agent/", "src/infra/"],
    why: "metrics and tracing are read by everything and read nothing of it",
  },
  {
    layer: "src/model.ts",
    not: ["src/delivery/", "src/kafka/", "src/stages/", "src/a2a/", "src/ops/", "src/agent/", "src/infra/"],
    why: "the data that travels between stages depends on nothing that handles it",
  },
];

/** Modules the production entry point may load only dynamically (embedded defaults). */
export const EMBEDDED_ONLY: readonly string[] = ["src/agent/", "src/infra/", "src/demo_events.ts"];

const within = (path: string, prefix: string) => prefix.endsWith("/") ? path.startsWith(prefix) : path === prefix;

/** Every problem with `graph`: import circles, layer breaches, embedded code loaded statically by `entry`. */
export function layerProblems(graph: ReadonlyMap<string, ModuleImports>, entry: string): string[] {
  const problems: string[] = [];
  for (const circle of circles(graph)) problems.push(`circle: ${circle.join(" -> ")}`);
  for (const [from, { imports, dynamic }] of graph) {
    for (const rule of RULES.filter((rule) => within(from, rule.layer))) {
      for (const to of [...imports, ...dynamic]) {
        const banned = rule.not.find((prefix) => within(to, prefix));
        if (banned) {
          problems.push(
            `${from} imports ${to}: ${rule.layer.replace("src/", "")} may not import ${banned} (${rule.why})`,
          );
        }
      }
    }
  }
  for (const module of staticallyReached(graph, entry)) {
    if (EMBEDDED_ONLY.some((prefix) => within(module, prefix))) {
      problems.push(`${entry} loads ${module} statically: embedded defaults are loaded with import() when used`);
    }
  }
  return problems;
}

function staticallyReached(graph: ReadonlyMap<string, ModuleImports>, entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (module: string) => {
    if (seen.has(module)) return;
    seen.add(module);
    for (const next of graph.get(module)?.imports ?? []) visit(next);
  };
  visit(entry);
  return seen;
}

/** The import circles (strongly connected components of more than one module, or a self-import), Tarjan's way. */
function circles(graph: ReadonlyMap<string, ModuleImports>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (module: string) => {
    index.set(module, index.size);
    low.set(module, index.get(module)!);
    stack.push(module);
    onStack.add(module);
    const { imports = [], dynamic = [] } = graph.get(module) ?? {};
    for (const next of [...imports, ...dynamic]) {
      if (!index.has(next)) {
        visit(next);
        low.set(module, Math.min(low.get(module)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(module, Math.min(low.get(module)!, index.get(next)!));
      }
    }
    if (low.get(module) !== index.get(module)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== module);
    if (component.length > 1 || imports.includes(module)) found.push(component.sort());
  };
  for (const module of graph.keys()) if (!index.has(module)) visit(module);
  return found;
}

/** The repository's import graph from `entries`, as `deno info --json` gives it (local modules only). */
export async function importGraph(entries: string[], root = Deno.cwd()): Promise<Map<string, ModuleImports>> {
  const prefix = new URL(`file://${root}/`).href;
  const local = (specifier?: string) => specifier?.startsWith(prefix) ? specifier.slice(prefix.length) : undefined;
  const graph = new Map<string, ModuleImports>();
  for (const entry of entries) {
    const { stdout, success, stderr } = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", entry] })
      .output();
    if (!success) throw new Error(`deno info ${entry}: ${new TextDecoder().decode(stderr)}`);
    const info = JSON.parse(new TextDecoder().decode(stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier: string }; type?: { specifier: string }; isDynamic?: boolean }[];
      }[];
    };
    for (const module of info.modules) {
      const from = local(module.specifier);
      if (!from || graph.has(from)) continue;
      const imports = new Set<string>();
      const dynamic = new Set<string>();
      for (const dependency of module.dependencies ?? []) {
        for (const target of [local(dependency.code?.specifier), local(dependency.type?.specifier)]) {
          if (target) (dependency.isDynamic ? dynamic : imports).add(target);
        }
      }
      graph.set(from, { imports: [...imports], dynamic: [...dynamic] });
    }
  }
  return graph;
}

if (import.meta.main) {
  const scripts = [...Deno.readDirSync("scripts")].filter((e) => e.name.endsWith(".ts")).map((e) =>
    `scripts/${e.name}`
  );
  const graph = await importGraph(["src/main.ts", ...scripts.sort()]);
  const problems = layerProblems(graph, "src/main.ts");
  for (const problem of problems) console.error(`layers: ${problem}`);
  if (problems.length) Deno.exit(1);
  console.log(`layers: ${graph.size} modules, no circle, every layer in its place`);
}
