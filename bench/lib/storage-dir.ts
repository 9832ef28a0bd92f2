/**
 * Where Miniflare keeps the bench's local storage. Without a persist path, Miniflare puts the SQLite files of local D1,
 * of the rate limiter and of every Durable Object under `os.tmpdir()`, which on most Linux machines is a disk: each
 * write transaction then waits for `fsync` on workerd's one thread (`strace -w -c -p <workerd>` during the read load:
 * 403 in 5 s, from the rate limiter's counter, which is written on every call, about 0.6 ms of wall time each). That
 * wait belongs to neither the service nor the baseline (a deployed Worker's D1 and rate limiter are not on its
 * thread, let alone its disk) and varies with the machine's disk. So the bench keeps that storage in memory, as its
 * stages assume, on tmpfs when the machine has one (`/dev/shm`); the report names the place.
 */
import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The tmpfs every mainstream Linux mounts; absent elsewhere (macOS), where the OS temporary directory is used. */
const TMPFS = '/dev/shm';

/**
 * Points `os.tmpdir()` (read by Miniflare when it is constructed) at a fresh directory on tmpfs, when there is one,
 * and answers where the storage lives: `tmpfs (/dev/shm)` or `os.tmpdir() (<path>)`. `BENCH_STORAGE=disk` keeps the
 * OS temporary directory, to measure what the disk costs.
 */
export function useMemoryStorage(): string {
  if (process.env.BENCH_STORAGE !== 'disk' && writableDir(TMPFS)) {
    const dir = mkdtempSync(join(TMPFS, 'gharart-bench-'));
    process.env.TMPDIR = dir;
    // Miniflare removes its own directory on dispose; this removes the parent, and whatever a crash left, on exit.
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    return `tmpfs (${TMPFS})`;
  }
  return `os.tmpdir() (${tmpdir()})`;
}

function writableDir(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
