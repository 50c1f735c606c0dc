/**
 * Every relative link in README.md and docs/*.md points to a file that exists, and every `#anchor`
 * to a heading of its target, slugged as GitHub does.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize } from "node:path";

/** GitHub's anchor for a heading: lowercase, punctuation removed (not `-` or `_`), each space a hyphen. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
}

/** The text outside fenced code blocks, line by line. */
function proseLines(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split("\n")) {
    const marker = line.match(/^\s*(`{3,}|~{3,})/)?.[1];
    if (fence) {
      if (marker && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
    } else if (marker) {
      fence = marker;
    } else {
      lines.push(line);
    }
  }
  return lines;
}

/** The anchors of a document's headings, with GitHub's `-1`, `-2` for repeated ones. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const line of proseLines(markdown)) {
    const heading = line.match(/^#{1,6}\s+(.*?)\s*#*\s*$/)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count ? `${base}-${count}` : base);
  }
  return result;
}

/** The `[text](target)` links of a document, outside code. */
function links(markdown: string): string[] {
  const found: string[] = [];
  for (const line of proseLines(markdown)) {
    // Code spans cannot hold links, but a link's text may hold a code span: keep a stand-in for it.
    const text = line.replace(/`[^`]*`/g, "code");
    for (const match of text.matchAll(/\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) found.push(match[1]);
  }
  return found;
}

/**
 * The broken links of `documents` (path → text), as `file: target: reason`; `read` gives another
 * file's text, `undefined` when it does not exist, `null` for a directory.
 */
function brokenLinks(
  documents: Map<string, string>,
  read: (path: string) => string | null | undefined,
): { checked: number; broken: string[] } {
  const broken: string[] = [];
  let checked = 0;
  for (const [file, markdown] of documents) {
    for (const target of links(markdown)) {
      if (/^(https?:|mailto:)/i.test(target)) continue;
      checked++;
      const [path, anchor] = target.split("#", 2) as [string, string | undefined];
      const resolved = path ? normalize(join(dirname(file), decodeURIComponent(path))) : file;
      const text = documents.get(resolved) ?? read(resolved);
      if (text === undefined) {
        broken.push(`${file}: ${target}: ${resolved} does not exist`);
      } else if (anchor !== undefined) {
        if (text === null || !resolved.endsWith(".md")) {
          broken.push(`${file}: ${target}: #${anchor} in a file that is not Markdown`);
        } else if (!anchors(text).has(anchor)) {
          broken.push(`${file}: ${target}: ${resolved} has no heading #${anchor}`);
        }
      }
    }
  }
  return { checked, broken };
}

function readFromDisk(path: string): string | null | undefined {
  try {
    if (Deno.statSync(path).isDirectory) return null;
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

Deno.test("slug() makes GitHub's heading anchors", () => {
  assert.equal(slug("Exactly once, for `read_committed` readers"), "exactly-once-for-read_committed-readers");
  assert.equal(slug("Examples and `deno task validate`"), "examples-and-deno-task-validate");
  assert.equal(slug("Security: SASL and TLS"), "security-sasl-and-tls");
  assert.equal(
    slug("Bounded memory, and one pipeline's backlog stays its own"),
    "bounded-memory-and-one-pipelines-backlog-stays-its-own",
  );
  assert.equal(slug("Archestra: `/v1` and `/v2`"), "archestra-v1-and-v2");
});

Deno.test("brokenLinks() finds a missing file, a missing heading, and skips code and web links", () => {
  const documents = new Map([
    [
      "README.md",
      "# Top\n\n## Top\n\n[a](docs/a.md#part) [b](docs/b.md) [c](#top-1) [d](#nowhere) [e](https://x.org/#y)\n",
    ],
    [
      "docs/a.md",
      "# A\n\n## Part\n\n```md\n[f](missing.md)\n```\n\n`[g](missing.md)` [h](../README.md#top) [i](a.md#whole)\n",
    ],
  ]);
  const { checked, broken } = brokenLinks(documents, () => undefined);
  assert.equal(checked, 6);
  assert.deepEqual(broken, [
    "README.md: docs/b.md: docs/b.md does not exist",
    "README.md: #nowhere: README.md has no heading #nowhere",
    "docs/a.md: a.md#whole: docs/a.md has no heading #whole",
  ]);
});

Deno.test("README.md and docs/*.md: every relative link and anchor resolves", async () => {
  const documents = new Map<string, string>([["README.md", await Deno.readTextFile("README.md")]]);
  for await (const entry of Deno.readDir("docs")) {
    if (entry.isFile && entry.name.endsWith(".md")) {
      documents.set(`docs/${entry.name}`, await Deno.readTextFile(`docs/${entry.name}`));
    }
  }
  assert.ok(documents.size > 10, `found only ${[...documents.keys()].join(", ")}`);
  const { checked, broken } = brokenLinks(documents, readFromDisk);
  assert.ok(checked > 50, `only ${checked} relative links found: is the link pattern still right?`);
  assert.deepEqual(broken, []);
});
