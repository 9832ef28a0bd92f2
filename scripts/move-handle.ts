/**
 * `npm run handle:move -- --handle <handle> --to <n> [--url http://127.0.0.1:8787] [--token <service JWT>]`: moves a
 * handle to another data shard against a running Worker (docs/design.md#moving-a-handle).
 *
 * The Worker does one bounded step per call of `POST /v2/internal/handles/{handle}/move`; `moveHandle` calls it until
 * the move is `done` (or `failed`), sleeping `retryAfterSeconds` while the move waits (the read-only settle and the
 * drain after the flip). Other scripts (the soak) import `moveHandle` and drive a move the same way.
 *
 * The service token: `--token`, else SERVICE_TOKEN, else one signed with the JWT_SECRET of .dev.vars, as
 * `npm run dev` prints it (scripts/dev-seed.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { demoCredentials } from './dev-seed.ts';

/** Where a move stands, as the Worker answers it (the `HandleMove` schema). */
export interface MoveState {
  handle: string;
  fromShard: number;
  toShard: number;
  phase: string;
  table: string | null;
  rowsCopied: number;
  rowsRemoved: number;
  counts: Record<string, { source: number; target: number }> | null;
  retryAfterSeconds: number;
  error: string | null;
  readOnlyAt: string | null;
  flippedAt: string | null;
  done: boolean;
}

export interface MoveHandleOptions {
  /** The Worker's base URL, e.g. `http://127.0.0.1:8787`. */
  url: string;
  /** A service JWT with `internal:provision`. */
  serviceToken: string;
  handle: string;
  toShard: number;
  /** Called after every step (progress lines, a soak's log). */
  onStep?: (state: MoveState) => void;
  /** Give up after this many consecutive failed calls (network errors, 5xx). Default 10. */
  maxFailures?: number;
}

export class MoveHandleError extends Error {
  /** The last state the Worker answered, if any. */
  readonly state: MoveState | null;
  constructor(message: string, state: MoveState | null) {
    super(message);
    this.state = state;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Drives a move to its end: returns the final state when `done`, throws {@link MoveHandleError} when the move failed
 * (the handle stays on its source) or the Worker refused it (a 4xx problem, quoted).
 */
export async function moveHandle(options: MoveHandleOptions): Promise<MoveState> {
  const endpoint = `${options.url.replace(/\/$/, '')}/v2/internal/handles/${encodeURIComponent(options.handle)}/move`;
  const maxFailures = options.maxFailures ?? 10;
  let failures = 0;
  let last: MoveState | null = null;
  for (;;) {
    let res: Response;
    try {
      res = await fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${options.serviceToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ toShard: options.toShard }),
      });
    } catch (err) {
      if (++failures >= maxFailures) throw new MoveHandleError(`The Worker is unreachable: ${String(err)}`, last);
      await sleep(1000);
      continue;
    }
    const body = (await res.json().catch(() => null)) as (MoveState & { detail?: string }) | null;
    // A concurrent step (409 from the version check) or a transient failure: call again.
    const again = res.status >= 500 || (res.status === 409 && last !== null);
    if (again) {
      if (++failures >= maxFailures) {
        throw new MoveHandleError(`The move step failed ${failures} times: ${res.status} ${body?.detail ?? ''}`, last);
      }
      await sleep(Number(res.headers.get('retry-after') ?? 1) * 1000);
      continue;
    }
    if (res.status !== 200 || !body) {
      throw new MoveHandleError(
        `The Worker refused the move: ${res.status} ${body?.detail ?? JSON.stringify(body)}`,
        last,
      );
    }
    failures = 0;
    last = body;
    options.onStep?.(body);
    if (body.phase === 'failed') throw new MoveHandleError(`The move failed: ${body.error}`, body);
    if (body.done) return body;
    if (body.retryAfterSeconds) await sleep(body.retryAfterSeconds * 1000);
  }
}

/** The service token of the local dev Worker: SERVICE_TOKEN, or signed with .dev.vars' JWT_SECRET. */
async function devServiceToken(): Promise<string> {
  if (process.env.SERVICE_TOKEN) return process.env.SERVICE_TOKEN;
  const root = join(fileURLToPath(import.meta.url), '..', '..');
  const vars = await readFile(join(root, '.dev.vars'), 'utf8').catch(() => '');
  const secret = /^JWT_SECRET=(.*)$/m.exec(vars)?.[1]?.trim();
  if (!secret) throw new Error('No --token, no SERVICE_TOKEN and no JWT_SECRET in .dev.vars (run `npm run dev` once).');
  return (await demoCredentials(secret)).serviceJwt;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      handle: { type: 'string' },
      to: { type: 'string' },
      url: { type: 'string', default: 'http://127.0.0.1:8787' },
      token: { type: 'string' },
    },
  });
  const toShard = Number(values.to);
  if (!values.handle || !Number.isInteger(toShard) || toShard < 0) {
    console.error('Usage: npm run handle:move -- --handle <handle> --to <shard> [--url <worker>] [--token <jwt>]');
    process.exit(2);
  }
  const started = Date.now();
  try {
    const state = await moveHandle({
      url: values.url!,
      serviceToken: values.token ?? (await devServiceToken()),
      handle: values.handle,
      toShard,
      onStep: (s) =>
        console.log(
          `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${s.phase.padEnd(9)} ${s.table ?? ''}` +
            `  copied ${s.rowsCopied}, removed ${s.rowsRemoved}` +
            (s.retryAfterSeconds ? `  (waiting ${s.retryAfterSeconds} s)` : ''),
        ),
    });
    console.log(`✔ ${state.handle} is on shard ${state.toShard} (read-only ${state.readOnlyAt} → ${state.flippedAt}).`);
    if (state.counts) console.table(state.counts);
  } catch (err) {
    console.error(`✘ ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
