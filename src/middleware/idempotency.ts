/**
 * Idempotency-Key for writes (docs/design.md#api-conventions, IETF draft semantics), scoped to principal + handle, kept
 * 24 h.
 *
 * - First use of a key: claimed atomically with `INSERT … ON CONFLICT DO UPDATE … WHERE expired`, so of N concurrent
 *   requests with one key exactly one runs; the others see it in progress (409).
 * - A 2xx response is stored (encrypted: it can hold a secret shown once, such as a new webhook's) and replayed byte
 *   for byte with `Idempotent-Replayed: true`; the same key with another method, path or body → 422. Any other
 *   outcome releases the key, so a client may retry a failed write with it.
 * - A claim still `in_progress` after STALE_CLAIM_MS belongs to a request that died mid-way; it is taken over.
 * - A create records its answer in the SAME `db.batch` as its write ({@link answerInBatch}): when D1 commits but the
 *   answer is lost (the client sees a 503), the key is already `completed`, so a retry with it replays the create's
 *   answer instead of creating a second resource (docs/reliability.md#scenarios).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { shardFor } from '../db/shards.ts';
import type { AppEnv } from '../env.ts';
import { decryptSecret, encryptSecret, importEncryptionKey, sha256Hex } from '../lib/crypto.ts';
import { problems } from '../lib/problem.ts';

const RETENTION_MS = 24 * 3600 * 1000;
/** Longer than any request may run (a test send times out after 15 s), shorter than a client's patience. */
const STALE_CLAIM_MS = 120_000;
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;
/** Response headers worth replaying; the rest (request id, rate limits) describe the new request. */
const REPLAYED_HEADERS = ['content-type', 'location', 'etag'];

/** The key a request holds while its route runs. */
interface Claim {
  principal: string;
  handle: string;
  key: string;
  requestHash: string;
  /** Where the key is stored: the handle's shard, or the control plane for writes outside a handle. */
  db: D1Database;
}

/** Claims by request context, for {@link answerInBatch}; a WeakMap, so nothing outlives its request. */
const claims = new WeakMap<object, Claim>();

/**
 * Marks a claimed key `completed` with an answer (body already encrypted). `inBatch`: only while still in progress for
 * this very request, and only if the statement before it in the batch changed a row (see {@link answerInBatch}).
 */
function completeStatement(
  db: D1Database,
  claim: Claim,
  answer: { status: number; headers: string; body: string | null },
  inBatch = false,
) {
  return db
    .prepare(
      `UPDATE idempotency_keys SET state = 'completed', response_status = ?4, response_headers = ?5,
         response_body = ?6
       WHERE principal = ?1 AND handle = ?2 AND key = ?3
         ${inBatch ? "AND request_hash = ?7 AND state = 'in_progress' AND changes() > 0" : ''}`,
    )
    .bind(
      claim.principal,
      claim.handle,
      claim.key,
      answer.status,
      answer.headers,
      answer.body,
      ...(inBatch ? [claim.requestHash] : []),
    );
}

/** The answer a create records with its write: what `c.json(body, status)` with `headers` will send. */
export interface RecordedAnswer {
  status: number;
  body: unknown;
  /** Response headers worth replaying, e.g. `Location`. */
  headers?: Record<string, string>;
}

/**
 * The statements that record `answer` as the completion of this request's Idempotency-Key, for the route to put in
 * the `db.batch` of its write, RIGHT AFTER the statement that must have changed a row: they apply only if it did
 * (`changes() > 0`), so a create that wrote nothing (a limit, a conflict) leaves the key to be released as usual.
 * Empty when the request has no key. When the route then answers 2xx, the middleware stores its final answer over
 * this one; when the answer is lost after the commit, a retry replays this one.
 */
export async function answerInBatch(c: Context<AppEnv>, answer: RecordedAnswer): Promise<D1PreparedStatement[]> {
  const claim = claims.get(c);
  if (!claim) return [];
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  for (const [name, value] of Object.entries(answer.headers ?? {})) {
    if (REPLAYED_HEADERS.includes(name.toLowerCase())) headers[name.toLowerCase()] = value;
  }
  const body = await encryptSecret(JSON.stringify(answer.body), await importEncryptionKey(c.env.ENCRYPTION_KEY));
  return [completeStatement(claim.db, claim, { status: answer.status, headers: JSON.stringify(headers), body }, true)];
}

export function idempotency(): MiddlewareHandler<AppEnv> {
  return async function idempotencyMiddleware(c, next) {
    const key = c.req.header('idempotency-key');
    if (key === undefined) return next();
    if (!VALID_KEY.test(key)) {
      throw problems.validation([
        { path: 'header.Idempotency-Key', message: 'Use 1–255 visible ASCII characters, e.g. a UUID.' },
      ]);
    }
    const principal = c.get('principal')!.key;
    const handle = c.req.param('handle') ?? '';
    const body = await c.req.text();
    const requestHash = await sha256Hex(`${c.req.method} ${c.req.path}\n${body}`);
    const now = new Date();
    // A handle's key lives on its shard, so the route's own batch can complete it (docs/design.md#shards).
    const db = handle ? await shardFor(c.env, handle) : c.env.DB;

    const claimed = await db
      .prepare(
        `INSERT INTO idempotency_keys (principal, handle, key, request_hash, state, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, 'in_progress', ?5, ?6)
         ON CONFLICT (principal, handle, key) DO UPDATE SET
           request_hash = excluded.request_hash, state = 'in_progress', response_status = NULL,
           response_headers = NULL, response_body = NULL, created_at = excluded.created_at,
           expires_at = excluded.expires_at
         WHERE idempotency_keys.expires_at <= excluded.created_at
            OR (idempotency_keys.state = 'in_progress' AND idempotency_keys.created_at <= ?7)
         RETURNING key`,
      )
      .bind(
        principal,
        handle,
        key,
        requestHash,
        now.toISOString(),
        new Date(now.getTime() + RETENTION_MS).toISOString(),
        new Date(now.getTime() - STALE_CLAIM_MS).toISOString(),
      )
      .first();

    if (!claimed) {
      const existing = await db
        .prepare(
          `SELECT request_hash, state, response_status, response_headers, response_body
           FROM idempotency_keys WHERE principal = ?1 AND handle = ?2 AND key = ?3`,
        )
        .bind(principal, handle, key)
        .first<{
          request_hash: string;
          state: string;
          response_status: number | null;
          response_headers: string | null;
          response_body: string | null;
        }>();
      if (!existing) {
        // Released between our insert and this read (the first request failed): ask the client to retry.
        throw problems.conflict('A request with this Idempotency-Key just finished without success; retry it.');
      }
      if (existing.request_hash !== requestHash) {
        throw problems.unprocessable('This Idempotency-Key was already used for a different request.');
      }
      if (existing.state !== 'completed') {
        const p = problems.conflict('A request with this Idempotency-Key is still being processed; retry shortly.');
        p.headers['Retry-After'] = '1';
        throw p;
      }
      const headers = new Headers(JSON.parse(existing.response_headers ?? '{}') as Record<string, string>);
      headers.set('Idempotent-Replayed', 'true');
      const replayed =
        existing.response_body === null
          ? null
          : await decryptSecret(existing.response_body, await importEncryptionKey(c.env.ENCRYPTION_KEY));
      c.res = new Response(replayed, { status: existing.response_status ?? 200, headers });
      return;
    }

    claims.set(c, { principal, handle, key, requestHash, db });
    let stored = false;
    try {
      await next();
      if (c.res.status >= 200 && c.res.status < 300) {
        const headers: Record<string, string> = {};
        for (const h of REPLAYED_HEADERS) {
          const v = c.res.headers.get(h);
          if (v) headers[h] = v;
        }
        const responseBody =
          c.res.status === 204
            ? null
            : await encryptSecret(await c.res.clone().text(), await importEncryptionKey(c.env.ENCRYPTION_KEY));
        await completeStatement(
          db,
          { principal, handle, key, requestHash, db },
          { status: c.res.status, headers: JSON.stringify(headers), body: responseBody },
        ).run();
        stored = true;
      }
    } finally {
      claims.delete(c);
      // A key completed in the route's own batch (answerInBatch) stays: its write committed, whatever came after.
      if (!stored) {
        await db
          .prepare(
            `DELETE FROM idempotency_keys WHERE principal = ?1 AND handle = ?2 AND key = ?3 AND state = 'in_progress'`,
          )
          .bind(principal, handle, key)
          .run();
      }
    }
  };
}
