/**
 * The repository explains itself and keeps its promises to deployed databases:
 * - no tracked file points outside the repository (a sibling folder, a design brief, an issue tracker's numbers):
 *   a clone alone must carry the design, so comments cite docs/ instead;
 * - migrations are append-only: every landed migration is listed with its SHA-256 in migrations/landed.sha256, and a
 *   listed file never changes (a deployed database has already applied it and would never see an edit).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function trackedTextFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' });
  return out
    .split('\0')
    .filter(Boolean)
    .filter((f) => !/\.(png|jpe?g|gif|ico|woff2?)$/i.test(f) && f !== 'package-lock.json');
}

/**
 * What a clone cannot follow: the folder beside the repository, the old brief's section signs, issue numbers. The
 * patterns and samples are assembled from pieces so that this file does not match itself.
 */
const SIBLING = ['..', 'shared'].join('/');
const BRIEF_SECTION = ['SPEC', '§'].join(' ');
const OUTSIDE = [
  { name: 'a path into the folder beside the repository', re: new RegExp(SIBLING.replace(/\./g, '\\.')) },
  { name: 'a section of a design brief outside the repository', re: new RegExp(BRIEF_SECTION) },
  { name: 'an issue number', re: /\bissues? #?\d+\b/i },
];

describe('the repository explains itself', () => {
  it('no tracked file refers to anything outside the repository', () => {
    const found: string[] = [];
    for (const file of trackedTextFiles()) {
      let text: string;
      try {
        text = readFileSync(join(ROOT, file), 'utf8');
      } catch {
        continue; // listed but deleted in the work tree
      }
      text.split('\n').forEach((line, i) => {
        for (const { name, re } of OUTSIDE) if (re.test(line)) found.push(`${file}:${i + 1}: ${name}: ${line.trim()}`);
      });
    }
    expect(found).toEqual([]);
  });

  it('the check itself catches each kind of reference', () => {
    const samples = [`see ${SIBLING}/x.md`, `as in ${BRIEF_SECTION}6`, `fixed in ${'issue'} 12`, `${'Issue'} #7 says`];
    for (const s of samples)
      expect(
        OUTSIDE.some(({ re }) => re.test(s)),
        s,
      ).toBe(true);
    expect(OUTSIDE.some(({ re }) => re.test('RFC 5322 §2.1.1 and docs/design.md#delivery'))).toBe(false);
  });
});

describe('migrations are append-only', () => {
  const dir = join(ROOT, 'migrations');
  const landed = new Map(
    readFileSync(join(dir, 'landed.sha256'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [hash, file] = line.split(/\s+\*?/);
        return [file!, hash!] as const;
      }),
  );
  const sql = readdirSync(dir).filter((f) => f.endsWith('.sql'));

  it('every landed migration is unchanged', () => {
    for (const [file, hash] of landed) {
      const actual = createHash('sha256')
        .update(readFileSync(join(dir, file)))
        .digest('hex');
      expect(actual, `${file} changed after it landed: add a new migration instead (npm run db:generate)`).toBe(hash);
    }
  });

  it('every migration is recorded, in drizzle-kit’s journal and in landed.sha256', () => {
    const journal = JSON.parse(readFileSync(join(dir, 'meta', '_journal.json'), 'utf8')) as {
      entries: Array<{ tag: string }>;
    };
    expect(journal.entries.map((e) => `${e.tag}.sql`)).toEqual(sql);
    const missing = sql.filter((f) => !landed.has(f));
    expect(missing, 'record a new migration: (cd migrations && sha256sum <file> >> landed.sha256)').toEqual([]);
  });
});
