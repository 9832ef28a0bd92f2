/**
 * The house rules of docs/architecture.md, checked on the source itself: imports point one way (routes → delivery and
 * email → lib and db), no import cycle anywhere in src/, the request-less pipeline never imports Hono, only the
 * modules that own a binding touch it, and no line is wider than Biome's 120 columns. A failure names the file and
 * the import or line.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');

/**
 * What each area of src/ may import besides itself. An area is a folder under src/ or a file at its top
 * (index, app, queue, env). Type-only imports count too: they are arrows a reader follows.
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  lib: [],
  db: ['lib'],
  // env.ts types the request variables with auth's Principal and PendingAccess; auth reads no config: it stays below.
  env: ['lib', 'auth'],
  auth: ['lib', 'db'],
  email: ['lib', 'db', 'env'],
  // delivery/replay.ts reads archived notifications back (archive/objects.ts) to replay them.
  delivery: ['lib', 'db', 'env', 'email', 'archive'],
  archive: ['lib', 'db', 'env'],
  middleware: ['lib', 'db', 'env', 'auth'],
  http: ['lib', 'db', 'env', 'auth', 'middleware'],
  routes: ['lib', 'db', 'env', 'auth', 'middleware', 'http', 'delivery', 'email', 'archive'],
  jobs: ['lib', 'db', 'env', 'delivery', 'email', 'archive'],
  dashboard: ['lib', 'env', 'http', 'routes'],
  queue: ['lib', 'env', 'delivery'],
  app: ['lib', 'db', 'env', 'auth', 'middleware', 'http', 'routes', 'dashboard'],
  // The Worker's module exports the Durable Object classes wrangler.toml binds (delivery/endpoint-pacer.ts).
  index: ['env', 'app', 'queue', 'jobs', 'delivery'],
};

/** Areas that run from a queue or a cron with no request in sight: no Hono, nothing under routes/. */
const REQUEST_LESS = ['lib', 'db', 'auth', 'delivery', 'email', 'archive', 'jobs'];
/**
 * The modules that decide without doing: signing, the retry schedule, outcome classes, matching. They are tested as
 * pure functions and shared by the consumer, test sends and the diagnosis, so nothing in them may reach a binding.
 */
const PURE = ['delivery/signing.ts', 'delivery/retry-policy.ts', 'delivery/classify.ts', 'delivery/match.ts'];
/** The one piece of Hono a request-less area may use: the mails are JSX (email/), rendered to a string by hono/jsx. */
const isMailJsx = (i: Import) => areaOf(i.from) === 'email' && /^hono\/jsx(\/|$)/.test(i.spec);

function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.tsx?$/.test(name) ? [path] : [];
  });
}

const areaOf = (file: string) =>
  relative(SRC, file)
    .split('/')[0]!
    .replace(/\.tsx?$/, '');
const rel = (file: string) => relative(join(SRC, '..'), file);

interface Import {
  from: string;
  spec: string;
  /** Resolved path for a relative import, else null (a package). */
  to: string | null;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => {
    const spec = (m[1] ?? m[2])!;
    return { from: file, spec, to: spec.startsWith('.') ? normalize(join(dirname(file), spec)) : null };
  });
}

const files = sourceFiles();
const imports = files.flatMap(importsOf);

describe('imports point one way', () => {
  it('every area imports only what stands below it', () => {
    const wrong = imports
      .filter((i) => i.to?.startsWith(SRC))
      .filter((i) => {
        const [a, b] = [areaOf(i.from), areaOf(i.to!)];
        return a !== b && !(MAY_IMPORT[a] ?? []).includes(b);
      })
      .map((i) => `${rel(i.from)} → ${rel(i.to!)}`);
    expect(wrong).toEqual([]);
  });

  it('every area of src/ has a rule (a new folder is placed on purpose)', () => {
    const areas = new Set(files.map(areaOf));
    expect([...areas].filter((a) => !(a in MAY_IMPORT))).toEqual([]);
  });

  it('no import cycle anywhere in src/', () => {
    const graph = new Map<string, string[]>(files.map((f) => [f, []]));
    for (const i of imports) if (i.to && graph.has(i.to)) graph.get(i.from)!.push(i.to);
    // Tarjan's strongly connected components: any component of more than one file is a cycle.
    let index = 0;
    const idx = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const cycles: string[][] = [];
    const visit = (v: string) => {
      idx.set(v, index);
      low.set(v, index++);
      stack.push(v);
      onStack.add(v);
      for (const w of graph.get(v)!) {
        if (!idx.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
      if (low.get(v) === idx.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(rel(w));
        } while (w !== v);
        if (component.length > 1) cycles.push(component.sort());
      }
    };
    for (const f of files) if (!idx.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('the pipeline and the pure modules never import Hono', () => {
    const wrong = imports
      .filter((i) => REQUEST_LESS.includes(areaOf(i.from)) && /^(hono|@hono\/)/.test(i.spec) && !isMailJsx(i))
      .map((i) => `${rel(i.from)} imports ${i.spec}`);
    expect(wrong).toEqual([]);
  });

  it('the pure decision modules import only lib/ and each other: no binding, no config, no database', () => {
    const pure = new Set(PURE.map((p) => join(SRC, p)));
    const wrong = imports
      .filter((i) => pure.has(i.from))
      .filter((i) => i.to === null || !(areaOf(i.to) === 'lib' || pure.has(i.to)))
      .map((i) => `${rel(i.from)} imports ${i.spec}`);
    expect(wrong).toEqual([]);
  });
});

describe('one owner per binding and per kind of side effect', () => {
  const offenders = (re: RegExp, owner: (file: string) => boolean) =>
    files.filter((f) => !owner(rel(f)) && re.test(readFileSync(f, 'utf8'))).map(rel);

  it('only delivery/enqueue.ts sends to the queues', () => {
    expect(offenders(/_QUEUE\??\.(send|sendBatch)\(/, (f) => f === 'src/delivery/enqueue.ts')).toEqual([]);
  });

  it('only email/providers/* touch a mail API or the send_email binding', () => {
    expect(offenders(/\bEMAIL\??\.send\(|new EmailMessage\(/, (f) => f.startsWith('src/email/providers/'))).toEqual([]);
  });

  it('routes and the dashboard never call fetch themselves', () => {
    expect(
      offenders(/(^|[^.\w])fetch\(/m, (f) => !f.startsWith('src/routes/') && !f.startsWith('src/dashboard/')),
    ).toEqual([]);
  });
});

describe('layout', () => {
  it('no line in src/ is longer than 120 columns', () => {
    // Biome wraps code at 120 columns but leaves strings, comments and JSX text alone: those are wrapped by hand.
    // A column is a code point, as Biome counts them (→, — and … are one each).
    const width = (line: string) => [...line].length;
    const tooLong = files.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split(/\r?\n/)
        .flatMap((line, i) => (width(line) > 120 ? [`${rel(f)}:${i + 1} (${width(line)} columns)`] : [])),
    );
    expect(tooLong).toEqual([]);
  });
});
