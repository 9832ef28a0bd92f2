/**
 * `npm run bundle:size [-- <commit> …] [-- --files <regex>]`: the deployed bundle's size in bytes, measured the way
 * `npm run bench` measures its Bundle row (docs/performance.md#bundle): `wrangler deploy --dry-run --outdir` with
 * wrangler.toml's settings (minified, zod aliased to src/lib/zod-slim), then index.js gzipped at level 9.
 *
 * With no commit it measures the working tree. Each commit given is exported with `git archive` into a temporary
 * directory (sharing this checkout's node_modules) and measured there, so two commits compare with one method:
 * `npm run bundle:size -- 50e2be6 da504f9`. Per line: raw bytes, gzipped bytes, the gzipped difference to the first
 * line, and the minified bytes esbuild's metafile gives the sources matching `--files` (default: the email path,
 * src/email and src/delivery/email*).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { ROOT, WRANGLER } from './wrangler-cli.ts';

/** The email path: its sources whose minified bytes are reported by default (docs/performance.md#bundle). */
export const EMAIL_PATH = /^src\/(email\/|delivery\/email)/;

export interface Figures {
  /** index.js as wrangler would upload it, in bytes. */
  raw: number;
  /** The same, gzipped at level 9. */
  gzip: number;
  /** The minified bytes of the sources matching the `files` pattern (esbuild's metafile `bytesInOutput`). */
  files: number;
}

/** Bundles the project checked out at `dir` as `wrangler deploy` would and measures the output. */
export function measure(dir: string, files: RegExp = EMAIL_PATH): Figures {
  const out = mkdtempSync(join(tmpdir(), 'bundle-size-out-'));
  try {
    const metafile = join(out, 'meta.json');
    execFileSync(process.execPath, [WRANGLER, 'deploy', '--dry-run', '--outdir', out, '--metafile', metafile], {
      cwd: dir,
      env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', WRANGLER_LOG: 'error' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const js = readFileSync(join(out, 'index.js'));
    const meta = JSON.parse(readFileSync(metafile, 'utf8')) as {
      outputs: Record<string, { inputs: Record<string, { bytesInOutput: number }> }>;
    };
    let bytes = 0;
    for (const output of Object.values(meta.outputs))
      for (const [input, { bytesInOutput }] of Object.entries(output.inputs))
        if (files.test(input)) bytes += bytesInOutput;
    return { raw: js.length, gzip: gzipSync(js, { level: 9 }).length, files: bytes };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Exports `commit`'s tree into a temporary directory, links node_modules, and measures it there. */
function measureCommit(commit: string, files: RegExp): Figures {
  const dir = mkdtempSync(join(tmpdir(), 'bundle-size-src-'));
  try {
    const tar = execFileSync('git', ['archive', '--format=tar', commit], { cwd: ROOT, maxBuffer: 1 << 30 });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    return measure(dir, files);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function label(commit: string | null): string {
  if (!commit) return 'working tree';
  return execFileSync('git', ['log', '-1', '--format=%h %s', commit], { cwd: ROOT, encoding: 'utf8' })
    .trim()
    .slice(0, 60);
}

function main() {
  const args = parseArgs({ options: { files: { type: 'string' } }, allowPositionals: true });
  const files = args.values.files ? new RegExp(args.values.files) : EMAIL_PATH;
  const commits = args.positionals.length ? args.positionals : [null];
  console.log(`| source | raw bytes | gzipped bytes | Δ gzipped vs the first | minified bytes of ${files.source} |`);
  console.log('|---|---|---|---|---|');
  let first: Figures | null = null;
  for (const commit of commits) {
    const f = commit ? measureCommit(commit, files) : measure(ROOT, files);
    first ??= f;
    const delta = f.gzip - first.gzip;
    console.log(`| ${label(commit)} | ${f.raw} | ${f.gzip} | ${delta > 0 ? '+' : ''}${delta} | ${f.files} |`);
  }
}

// Run as a script (`npm run bundle:size`), not when a test imports measure().
if (resolve(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) main();
