/**
 * The docs hold together, so a reader who follows a pointer lands somewhere:
 * - every `docs/<file>.md#anchor` cited in a tracked file (code comments included, and `, #more` anchors after it)
 *   names a heading of that file, as GitHub turns headings into ids;
 * - every relative Markdown link in docs/*.md and README.md points at a tracked file (and, with `#anchor`, a heading);
 * - every repository path docs/*.md names in a code span exists, and every test name docs/reliability.md quotes after
 *   a test file is in that file;
 * - the routes table of docs/design.md has one row per operation, with the method, path and operationId of the code.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

const tracked: string[] = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
  .split('\0')
  .filter(Boolean);
const trackedSet = new Set(tracked);
const isTracked = (path: string) =>
  trackedSet.has(path) || tracked.some((f) => f.startsWith(`${path.replace(/\/$/, '')}/`));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

const DOCS = tracked.filter((f) => /^docs\/[^/]+\.md$/.test(f));
const TEXT_FILES = tracked.filter((f) => !/\.(png|jpe?g|gif|ico|woff2?)$/i.test(f) && f !== 'package-lock.json');

/**
 * A heading's id as GitHub makes it: the text (a link's label, not its target), lower-cased, every character that is
 * not a letter, digit, space, hyphen or underscore dropped, each space a hyphen.
 */
function githubSlug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** Lines outside fenced code blocks. */
function proseLines(markdown: string): string[] {
  let fenced = false;
  return markdown.split('\n').filter((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return false;
    }
    return !fenced;
  });
}

/** The ids a Markdown file offers: its headings' slugs (a repeated one gets `-1`, `-2`, …) and HTML anchors. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (heading) {
      const slug = githubSlug(heading[1]!);
      const n = seen.get(slug) ?? 0;
      seen.set(slug, n + 1);
      anchors.add(n === 0 ? slug : `${slug}-${n}`);
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]!);
  }
  return anchors;
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOfFile(path: string): Set<string> {
  let anchors = anchorCache.get(path);
  if (!anchors) {
    anchors = anchorsOf(read(path));
    anchorCache.set(path, anchors);
  }
  return anchors;
}

/** `docs/<file>.md#a` plus any `, #b, #c` right after it: the file and each anchor. */
const CITATION = /docs\/([\w.-]+\.md)((?:#[\w-]+)(?:,\s*#[\w-]+)*)/g;

function citationsIn(text: string): Array<{ doc: string; anchor: string }> {
  const out: Array<{ doc: string; anchor: string }> = [];
  for (const m of text.matchAll(CITATION)) {
    for (const anchor of m[2]!.match(/#[\w-]+/g)!) out.push({ doc: `docs/${m[1]}`, anchor: anchor.slice(1) });
  }
  return out;
}

/** The targets of a Markdown file's links (inline and reference-style), outside code. */
function linkTargets(markdown: string): string[] {
  const targets: string[] = [];
  for (const raw of proseLines(markdown)) {
    const line = raw.replace(/`[^`]*`/g, '');
    for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1]!);
    const definition = /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$/.exec(line);
    if (definition) targets.push(definition[1]!);
  }
  return targets;
}

describe('docs: cited anchors', () => {
  it('every docs/<file>.md#anchor cited in a tracked file is a heading of that file', () => {
    const broken: string[] = [];
    let cited = 0;
    for (const file of TEXT_FILES) {
      let text: string;
      try {
        text = read(file);
      } catch {
        continue; // listed but deleted in the work tree
      }
      text.split('\n').forEach((line, i) => {
        for (const { doc, anchor } of citationsIn(line)) {
          cited++;
          if (!trackedSet.has(doc)) broken.push(`${file}:${i + 1}: ${doc} does not exist`);
          else if (!anchorsOfFile(doc).has(anchor)) broken.push(`${file}:${i + 1}: ${doc} has no heading #${anchor}`);
        }
      });
    }
    expect(broken).toEqual([]);
    expect(cited).toBeGreaterThan(0);
  });

  it('headings become the ids GitHub gives them, and a citation lists each of its anchors', () => {
    expect(githubSlug('URL rules (SSRF)')).toBe('url-rules-ssrf');
    expect(githubSlug('Identity, access and limits')).toBe('identity-access-and-limits');
    expect(githubSlug('Errors: problem+json with the `requestId`')).toBe('errors-problemjson-with-the-requestid');
    expect(githubSlug('See [the routes](#routes) — all of them')).toBe('see-the-routes--all-of-them');
    expect(githubSlug('owner_default and 1. Ids')).toBe('owner_default-and-1-ids');
    const anchors = anchorsOf('# A\n## Delivery\n```\n## Not a heading\n```\n### Delivery\n<a id="custom"></a>');
    expect([...anchors].sort()).toEqual(['a', 'custom', 'delivery', 'delivery-1']);
    // Assembled from pieces so that this file does not cite anything itself.
    const doc = ['docs', 'design.md'].join('/');
    expect(citationsIn(`see ${doc}#test-sends, #debug-playbooks (playbook 1) and ${doc}#routes`)).toEqual([
      { doc, anchor: 'test-sends' },
      { doc, anchor: 'debug-playbooks' },
      { doc, anchor: 'routes' },
    ]);
  });
});

describe('docs: links and paths', () => {
  it('every relative link in docs/*.md and README.md points at a tracked file, and at a heading when it has #', () => {
    const broken: string[] = [];
    for (const file of [...DOCS, 'README.md']) {
      for (const target of linkTargets(read(file))) {
        if (/^[a-z][a-z0-9+.-]*:|^\/\//i.test(target)) continue; // https:, mailto:, protocol-relative
        const [rawPath = '', anchor] = target.split('#', 2);
        const path = decodeURIComponent(rawPath);
        const resolved = path === '' ? file : posix.normalize(posix.join(dirname(file), path)).replace(/^\/+/, '');
        if (resolved.startsWith('..') || !isTracked(resolved)) {
          broken.push(`${file}: (${target}) → ${resolved} is not a file of the repository`);
        } else if (anchor && resolved.endsWith('.md') && !anchorsOfFile(resolved).has(anchor)) {
          broken.push(`${file}: (${target}) → ${resolved} has no heading #${anchor}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('finds inline, image and reference links outside code', () => {
    const md = '[a](x.md#y) ![s](img/s.png "t") `[no](code.md)`\n[ref]: ../z.md\n```\n[no](fenced.md)\n```';
    expect(linkTargets(md)).toEqual(['x.md#y', 'img/s.png', '../z.md']);
  });

  it('every repository path docs/*.md names in a code span exists', () => {
    const missing: string[] = [];
    for (const file of DOCS) {
      for (const line of proseLines(read(file))) {
        for (const m of line.matchAll(/`((?:src|test|scripts|bench|migrations|docs)\/[\w./-]+)`/g)) {
          if (!isTracked(m[1]!)) missing.push(`${file}: ${m[1]}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('every test name docs/*.md quotes after a test file is in that file', () => {
    const missing: string[] = [];
    let quoted = 0;
    for (const file of DOCS) {
      for (const line of proseLines(read(file))) {
        let testFile: string | null = null;
        for (const m of line.matchAll(/`(test\/[\w./-]+\.test\.ts)`|"([^"]+)"/g)) {
          if (m[1]) testFile = m[1];
          else if (testFile && isTracked(testFile)) {
            quoted++;
            const name = m[2]!.replace(/…$/, '');
            if (!read(testFile).includes(name)) missing.push(`${file}: "${m[2]}" is not in ${testFile}`);
          }
        }
      }
    }
    expect(missing).toEqual([]);
    expect(quoted).toBeGreaterThan(0);
  });
});

describe('docs/design.md: the routes table', () => {
  /** Each `createRoute(…)` of src/routes: its method, path and operationId (in whatever order it lists them). */
  function definedOperations() {
    const ops: Array<{ method: string; path: string; operationId: string; file: string }> = [];
    for (const file of tracked.filter((f) => /^src\/routes\/.+\.tsx?$/.test(f))) {
      for (const chunk of read(file).split('createRoute(').slice(1)) {
        const method = /\bmethod: '(\w+)'/.exec(chunk)?.[1];
        const path = /\bpath: '([^']+)'/.exec(chunk)?.[1];
        const operationId = /\boperationId: '(\w+)'/.exec(chunk)?.[1];
        if (!method || !path || !operationId) throw new Error(`${file}: a createRoute without method, path or id`);
        ops.push({ method: method.toUpperCase(), path, operationId, file });
      }
    }
    return ops;
  }

  it('has one row per operation, with the method, path and operationId of its route', () => {
    const defined = definedOperations();
    expect(defined.length).toBeGreaterThan(40);
    const rows = [
      ...read('docs/design.md').matchAll(/^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| `(\w+)` \|/gm),
    ].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
    const expected = defined.map((o) => `${o.method} ${o.path} ${o.operationId}`);
    expect(
      expected.filter((e) => !rows.includes(e)),
      'operations missing from the table',
    ).toEqual([]);
    expect(
      rows.filter((r) => !expected.includes(r)),
      'rows no route defines',
    ).toEqual([]);
    expect(rows.length).toBe(new Set(rows).size);
  });
});
