/**
 * Where the bench keeps Miniflare's local storage (bench/lib/storage-dir.ts): on tmpfs when the machine has one, so a
 * disk's `fsync` never stalls workerd's one thread in a measured window (docs/performance.md#local-storage-disk-or-memory);
 * `BENCH_STORAGE=disk` keeps the OS temporary directory.
 */
import { accessSync, constants, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { afterEach, describe, expect, it } from 'vitest';
import { useMemoryStorage } from '../../bench/lib/storage-dir.ts';

const saved = { TMPDIR: process.env.TMPDIR, BENCH_STORAGE: process.env.BENCH_STORAGE };
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

const hasTmpfs = (() => {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return true;
  } catch {
    return false;
  }
})();

describe('the bench: local storage', () => {
  it("puts local D1's SQLite file where it says: tmpfs when there is one, else the OS temporary directory", async () => {
    delete process.env.BENCH_STORAGE;
    const where = useMemoryStorage();
    const dir = tmpdir();
    if (hasTmpfs) {
      expect(where).toBe('tmpfs (/dev/shm)');
      expect(dir).toMatch(/^\/dev\/shm\/gharart-bench-/);
    } else {
      expect(where).toBe(`os.tmpdir() (${dir})`);
    }
    const mf = new Miniflare(
      convertV4MiniflareOptions({
        workers: [
          {
            name: 'storage',
            modules: true,
            script: 'export default { fetch: () => new Response("ok") };',
            compatibilityDate: '2025-01-01',
            d1Databases: { DB: 'bench-storage-test' },
          },
        ],
      }),
    );
    try {
      const db = await mf.getD1Database('DB');
      await db.exec('CREATE TABLE t (a TEXT)');
      const files = readdirSync(dir, { recursive: true }).map(String);
      expect(files.some((f) => /^miniflare-[0-9a-f]+\/d1\/.+\.sqlite$/.test(f))).toBe(true);
    } finally {
      await mf.dispose();
      // The bench removes it when its process exits; a test worker may outlive this test.
      if (hasTmpfs) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('BENCH_STORAGE=disk leaves the OS temporary directory as it is', () => {
    process.env.BENCH_STORAGE = 'disk';
    const before = tmpdir();
    expect(useMemoryStorage()).toBe(`os.tmpdir() (${before})`);
    expect(tmpdir()).toBe(before);
  });
});
