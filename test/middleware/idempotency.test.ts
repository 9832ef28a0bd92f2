/**
 * Idempotency-Key on writes (docs/design.md#api-conventions, IETF draft semantics): replay, mismatch, concurrency, scoping, expiry, key
 * validation, and release of the key after a failed write.
 */

import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { decryptSecret, importEncryptionKey } from '../../src/lib/crypto.ts';
import { answerLostD1 } from '../support/faulty-d1.ts';
import {
  addMember,
  anyShard,
  call,
  callJson,
  callWithVars,
  createPat,
  expectProblem,
  provisionHandle,
  shardName,
  shardOf,
  unique,
} from '../support/helpers.ts';
import { countRows, dailyCount, userJwt } from '../support/seed.ts';

const subsPath = (h: string) => `/v2/handles/${h}/notifications/email-subscriptions`;
const hooksPath = (h: string) => `/v2/handles/${h}/webhooks`;
const HOOK_URL = 'http://127.0.0.1:9/hook';

async function setup() {
  const owner = unique('u');
  const handle = await provisionHandle(owner);
  return { owner, handle, token: await userJwt(owner) };
}

const email = () => `${unique('idem')}@example.com`;
const key = () => crypto.randomUUID();

async function send(method: string, path: string, token: string, body: unknown, idempotencyKey?: string) {
  const res = await call(method, path, {
    token,
    body,
    ...(idempotencyKey !== undefined ? { headers: { 'idempotency-key': idempotencyKey } } : {}),
  });
  return { res, status: res.status, text: await res.text() };
}

describe('Idempotency-Key', () => {
  it('same key and body → the same status and body, Idempotent-Replayed: true, one row written', async () => {
    const { handle, token } = await setup();
    const k = key();
    const body = { email: email() };
    const first = await send('POST', subsPath(handle), token, body, k);
    expect(first.status).toBe(201);
    expect(first.res.headers.get('idempotent-replayed')).toBeNull();
    const second = await send('POST', subsPath(handle), token, body, k);
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
    expect(second.res.headers.get('idempotent-replayed')).toBe('true');
    expect(second.res.headers.get('content-type')).toBe(first.res.headers.get('content-type'));
    expect(second.res.headers.get('location')).toBe(first.res.headers.get('location'));
    // The replay is a new request: its own request id.
    expect(second.res.headers.get('x-request-id')).not.toBe(first.res.headers.get('x-request-id'));
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
    // A third time still replays.
    const third = await send('POST', subsPath(handle), token, body, k);
    expect(third.text).toBe(first.text);
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
  });

  it('webhook creation: the replay returns the same secret and writes one webhook', async () => {
    const { handle, token } = await setup();
    const k = key();
    const body = { url: HOOK_URL, description: 'CRM' };
    const first = await send('POST', hooksPath(handle), token, body, k);
    expect(first.status, first.text).toBe(201);
    const second = await send('POST', hooksPath(handle), token, body, k);
    expect(second.status).toBe(201);
    expect(second.res.headers.get('idempotent-replayed')).toBe('true');
    expect(JSON.parse(second.text)).toEqual(JSON.parse(first.text));
    expect(JSON.parse(second.text).secret).toMatch(/^whsec_/);
    expect(await countRows('webhook_subscriptions', 'handle', handle)).toBe(1);
  });

  it('a replay does not count as another write against the daily limit', async () => {
    const { handle, token } = await setup();
    const k = key();
    const body = { email: email() };
    expect((await send('POST', subsPath(handle), token, body, k)).status).toBe(201);
    expect(await dailyCount(handle)).toBe(1);
    expect((await send('POST', subsPath(handle), token, body, k)).status).toBe(201);
    expect(await dailyCount(handle)).toBe(1);
  });

  it('a 204 (DELETE) is replayed as 204 with an empty body', async () => {
    const { handle, token } = await setup();
    const created = await callJson('POST', subsPath(handle), { token, body: { email: email() } });
    const k = key();
    const first = await send('DELETE', `${subsPath(handle)}/${created.body.id}`, token, undefined, k);
    expect(first.status).toBe(204);
    const second = await send('DELETE', `${subsPath(handle)}/${created.body.id}`, token, undefined, k);
    expect(second.status).toBe(204);
    expect(second.text).toBe('');
    expect(second.res.headers.get('idempotent-replayed')).toBe('true');
    // Without the key, the second delete finds nothing.
    expect((await send('DELETE', `${subsPath(handle)}/${created.body.id}`, token, undefined)).status).toBe(404);
  });

  it('same key, different body → 422, and nothing written', async () => {
    const { handle, token } = await setup();
    const k = key();
    expect((await send('POST', subsPath(handle), token, { email: email() }, k)).status).toBe(201);
    const other = await send('POST', subsPath(handle), token, { email: email() }, k);
    expect(other.status).toBe(422);
    await expectProblem(new Response(other.text, { status: other.status, headers: other.res.headers }), 422);
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
  });

  it('same key on another path (another resource) → 422', async () => {
    const { handle, token } = await setup();
    const k = key();
    expect((await send('POST', subsPath(handle), token, { email: email() }, k)).status).toBe(201);
    const res = await send('POST', hooksPath(handle), token, { url: HOOK_URL }, k);
    expect(res.status).toBe(422);
    expect(await countRows('webhook_subscriptions', 'handle', handle)).toBe(0);
  });

  it('20 concurrent requests with one key → exactly one row; the rest are 409 (in progress) or replays of the 201', async () => {
    const { handle, token } = await setup();
    const k = key();
    const body = { email: email() };
    const results = await Promise.all(Array.from({ length: 20 }, () => send('POST', subsPath(handle), token, body, k)));
    const created = results.filter((r) => r.status === 201 && r.res.headers.get('idempotent-replayed') === null);
    expect(created).toHaveLength(1);
    for (const r of results) {
      if (r === created[0]) continue;
      if (r.status === 409) {
        const problem = JSON.parse(r.text);
        expect(problem.status).toBe(409);
        expect(r.res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      } else {
        expect(r.status, r.text).toBe(201);
        expect(r.res.headers.get('idempotent-replayed')).toBe('true');
        expect(r.text).toBe(created[0]!.text);
      }
    }
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
    // Once finished, the key replays.
    const after = await send('POST', subsPath(handle), token, body, k);
    expect(after.status).toBe(201);
    expect(after.text).toBe(created[0]!.text);
  });

  it('20 concurrent webhook creations with one key → exactly one webhook', async () => {
    const { handle, token } = await setup();
    const k = key();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => send('POST', hooksPath(handle), token, { url: HOOK_URL }, k)),
    );
    expect(results.filter((r) => r.status === 201 && r.res.headers.get('idempotent-replayed') === null)).toHaveLength(
      1,
    );
    for (const r of results) expect([201, 409]).toContain(r.status);
    expect(await countRows('webhook_subscriptions', 'handle', handle)).toBe(1);
  });

  it('keys are scoped to principal and handle: other tenants, other handles and other members are independent', async () => {
    const a = await setup();
    const b = await setup();
    const k = key();
    const body = { email: email() };
    const ra = await send('POST', subsPath(a.handle), a.token, body, k);
    const rb = await send('POST', subsPath(b.handle), b.token, body, k);
    expect(ra.status).toBe(201);
    expect(rb.status).toBe(201);
    expect(rb.res.headers.get('idempotent-replayed')).toBeNull();
    expect(JSON.parse(rb.text).id).not.toBe(JSON.parse(ra.text).id);
    // The same user on another of their handles.
    const second = await provisionHandle(a.owner);
    const rc = await send('POST', subsPath(second), a.token, body, k);
    expect(rc.status).toBe(201);
    expect(rc.res.headers.get('idempotent-replayed')).toBeNull();
    // Another member of the same handle, same key and body: their own request (here a 409 duplicate address, not a replay).
    const admin = unique('admin');
    await addMember(a.handle, admin, 'admin');
    const rd = await send('POST', subsPath(a.handle), await userJwt(admin), body, k);
    expect(rd.res.headers.get('idempotent-replayed')).toBeNull();
    expect(rd.status).toBe(409);
    expect(await countRows('email_subscriptions', 'handle', a.handle)).toBe(1);
    expect(await countRows('email_subscriptions', 'handle', b.handle)).toBe(1);
    expect(await countRows('email_subscriptions', 'handle', second)).toBe(1);
  });

  it('the same user through a PAT shares the key space with their JWT (one principal)', async () => {
    const { owner, handle, token } = await setup();
    const pat = await createPat(owner, { scopes: ['notifications:write'] });
    const k = key();
    const body = { email: email() };
    const first = await send('POST', subsPath(handle), token, body, k);
    const second = await send('POST', subsPath(handle), pat.token, body, k);
    expect(second.status).toBe(201);
    expect(second.res.headers.get('idempotent-replayed')).toBe('true');
    expect(second.text).toBe(first.text);
  });

  it('an expired key is a new request: a new row is written', async () => {
    const { handle, token } = await setup();
    const k = key();
    const address = email();
    const first = await send('POST', subsPath(handle), token, { email: address }, k);
    expect(first.status).toBe(201);
    const stored = await (await shardOf(handle))
      .prepare('SELECT state, expires_at FROM idempotency_keys WHERE handle = ? AND key = ?')
      .bind(handle, k)
      .first<{ state: string; expires_at: string }>();
    expect(stored!.state).toBe('completed');
    const ttl = Date.parse(stored!.expires_at) - Date.now();
    expect(ttl).toBeGreaterThan(24 * 3600_000 - 60_000);
    expect(ttl).toBeLessThanOrEqual(24 * 3600_000);
    await (await shardOf(handle))
      .prepare('UPDATE idempotency_keys SET expires_at = ? WHERE handle = ? AND key = ?')
      .bind(new Date(Date.now() - 1000).toISOString(), handle, k)
      .run();
    // A different body is fine now (not 422), and it runs.
    const second = await send('POST', subsPath(handle), token, { email: email() }, k);
    expect(second.status).toBe(201);
    expect(second.res.headers.get('idempotent-replayed')).toBeNull();
    expect(JSON.parse(second.text).id).not.toBe(JSON.parse(first.text).id);
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(2);
    // The key now belongs to the second request: the first body again is a mismatch.
    const third = await send('POST', subsPath(handle), token, { email: address }, k);
    expect(third.status).toBe(422);
  });

  it('an invalid key → 400 naming header.Idempotency-Key; nothing written', async () => {
    const { handle, token } = await setup();
    for (const bad of ['', 'x'.repeat(256), 'clé-ünïcode', 'has space', 'tab\there']) {
      const res = await send('POST', subsPath(handle), token, { email: email() }, bad);
      const problem = await expectProblem(
        new Response(res.text, { status: res.status, headers: res.res.headers }),
        400,
      );
      expect(
        problem.errors.map((e: { path: string }) => e.path),
        JSON.stringify(bad),
      ).toContain('header.Idempotency-Key');
    }
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(0);
    // 255 visible ASCII characters is the longest valid key.
    expect((await send('POST', subsPath(handle), token, { email: email() }, '~'.repeat(255))).status).toBe(201);
  });

  it('a failed write (400) does not keep the key: the same key with a corrected body then succeeds', async () => {
    const { handle, token } = await setup();
    const k = key();
    const bad = await send('POST', subsPath(handle), token, { email: 'not-an-email' }, k);
    expect(bad.status).toBe(400);
    const rows = await (await shardOf(handle))
      .prepare('SELECT count(*) AS n FROM idempotency_keys WHERE handle = ? AND key = ?')
      .bind(handle, k)
      .first<{ n: number }>();
    expect(rows!.n).toBe(0);
    const good = await send('POST', subsPath(handle), token, { email: email() }, k);
    expect(good.status).toBe(201);
    expect(good.res.headers.get('idempotent-replayed')).toBeNull();
  });

  it('the stored response of a webhook creation does not keep the signing secret in clear (secrets are encrypted at rest)', async () => {
    const { handle, token } = await setup();
    const k = key();
    const first = await send('POST', hooksPath(handle), token, { url: HOOK_URL }, k);
    expect(first.status).toBe(201);
    const secret = JSON.parse(first.text).secret as string;
    expect(secret).toMatch(/^whsec_/);
    const row = await (await shardOf(handle))
      .prepare('SELECT * FROM idempotency_keys WHERE handle = ? AND key = ?')
      .bind(handle, k)
      .first();
    expect(row).not.toBeNull();
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(JSON.stringify(row)).not.toContain(secret.slice('whsec_'.length));
    // The replay still hands the client its secret.
    const replay = await send('POST', hooksPath(handle), token, { url: HOOK_URL }, k);
    expect(JSON.parse(replay.text).secret).toBe(secret);
  });

  it('the stored response of a PAT creation does not keep the token in clear (PATs are stored only as SHA-256)', async () => {
    const user = unique('u');
    const jwt = await userJwt(user);
    const k = key();
    const res = await call('POST', '/v2/tokens', {
      token: jwt,
      body: { name: 'ci', scopes: ['webhooks:read'] },
      headers: { 'idempotency-key': k },
    });
    expect(res.status).toBe(201);
    const pat = ((await res.json()) as { token: string }).token;
    expect(pat).toMatch(/^grt_/);
    const row = await env.DB.prepare('SELECT * FROM idempotency_keys WHERE principal = ? AND key = ?')
      .bind(`user:${user}`, k)
      .first();
    expect(row).not.toBeNull();
    expect(JSON.stringify(row)).not.toContain(pat);
  });

  it('a claim left in progress by a request that died (an hour ago) does not answer 409 for the rest of the day', async () => {
    const { owner, handle, token } = await setup();
    const k = key();
    const body = { email: email() };
    // What a request leaves behind when its isolate is killed between the claim and the release.
    const { sha256Hex } = await import('../../src/lib/crypto.ts');
    const hash = await sha256Hex(`POST ${subsPath(handle)}\n${JSON.stringify(body)}`);
    const hourAgo = Date.now() - 3600_000;
    await (await shardOf(handle))
      .prepare(
        `INSERT INTO idempotency_keys (principal, handle, key, request_hash, state, created_at, expires_at)
       VALUES (?, ?, ?, ?, 'in_progress', ?, ?)`,
      )
      .bind(
        `user:${owner}`,
        handle,
        k,
        hash,
        new Date(hourAgo).toISOString(),
        new Date(hourAgo + 24 * 3600_000).toISOString(),
      )
      .run();
    const retry = await send('POST', subsPath(handle), token, body, k);
    expect(retry.status, retry.text).toBe(201);
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
  });

  it('a failed write (409 duplicate) does not keep the key either', async () => {
    const { handle, token } = await setup();
    const address = email();
    expect((await send('POST', subsPath(handle), token, { email: address })).status).toBe(201);
    const k = key();
    expect((await send('POST', subsPath(handle), token, { email: address.toUpperCase() }, k)).status).toBe(409);
    const good = await send('POST', subsPath(handle), token, { email: email() }, k);
    expect(good.status).toBe(201);
  });
});

/** The current signing secret of a webhook, decrypted from its row. */
async function storedSecret(id: string): Promise<string> {
  const row = await anyShard
    .prepare('SELECT secret_encrypted FROM webhook_subscriptions WHERE id = ?')
    .bind(id)
    .first<{ secret_encrypted: string }>();
  return decryptSecret(row!.secret_encrypted, await importEncryptionKey(env.ENCRYPTION_KEY));
}

// docs/reliability.md#scenarios: D1 commits a create but its answer is lost; the client retries with its key.
describe('Idempotency-Key: ambiguous creates', () => {
  it('an ambiguous webhook create (committed, answer lost → 503): the retry with the same key replays the 201 with the stored id and secret; one webhook', async () => {
    const { handle, token } = await setup();
    const d1 = answerLostD1(await shardOf(handle));
    d1.loseAnswerOf(/insert into "webhook_subscriptions"/i);
    const k = key();
    const body = { url: HOOK_URL, description: 'ambiguous' };
    const first = await callWithVars({ [await shardName(handle)]: d1.db }, 'POST', hooksPath(handle), {
      token,
      body,
      headers: { 'idempotency-key': k },
    });
    expect(d1.lost()).toBe(1);
    await expectProblem(first, 503);
    expect(await countRows('webhook_subscriptions', 'handle', handle)).toBe(1);

    const retry = await send('POST', hooksPath(handle), token, body, k);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.res.headers.get('idempotent-replayed')).toBe('true');
    const created = JSON.parse(retry.text) as { id: string; secret: string };
    expect(await countRows('webhook_subscriptions', 'handle', handle)).toBe(1);
    const stored = await anyShard.prepare('SELECT id FROM webhook_subscriptions WHERE handle = ?').bind(handle).first();
    expect(created.id).toBe(stored!.id);
    expect(retry.res.headers.get('location')).toBe(`${hooksPath(handle)}/${created.id}`);
    // The secret the client finally holds is the one deliveries are signed with.
    expect(created.secret).toBe(await storedSecret(created.id));
    // A third try replays the same answer again.
    const again = await send('POST', hooksPath(handle), token, body, k);
    expect(JSON.parse(again.text)).toEqual(created);
  });

  it('an ambiguous email subscription create: the retry with the same key replays the 201 (not a 409 duplicate); one subscription', async () => {
    const { handle, token } = await setup();
    const d1 = answerLostD1(await shardOf(handle));
    d1.loseAnswerOf(/insert into "email_subscriptions"/i);
    const k = key();
    const body = { email: email() };
    const first = await callWithVars({ [await shardName(handle)]: d1.db }, 'POST', subsPath(handle), {
      token,
      body,
      headers: { 'idempotency-key': k },
    });
    expect(d1.lost()).toBe(1);
    await expectProblem(first, 503);
    const retry = await send('POST', subsPath(handle), token, body, k);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.res.headers.get('idempotent-replayed')).toBe('true');
    const created = JSON.parse(retry.text) as { id: string; email: string; status: string };
    expect(created.email).toBe(body.email);
    expect(created.status).toBe('pending_confirmation');
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
    const stored = await anyShard.prepare('SELECT id FROM email_subscriptions WHERE handle = ?').bind(handle).first();
    expect(created.id).toBe(stored!.id);
  });

  it('an ambiguous secret rotation: the retry with the same key replays the new secret instead of rotating again (the secret the receiver holds still signs)', async () => {
    const { handle, token } = await setup();
    const made = await send('POST', hooksPath(handle), token, { url: HOOK_URL });
    const hook = JSON.parse(made.text) as { id: string; secret: string };
    const d1 = answerLostD1(await shardOf(handle));
    d1.loseAnswerOf(/update "?webhook_subscriptions"? set "?secret_encrypted/i);
    const k = key();
    const path = `${hooksPath(handle)}/${hook.id}/rotate-secret`;
    const first = await callWithVars({ [await shardName(handle)]: d1.db }, 'POST', path, {
      token,
      body: { graceHours: 24 },
      headers: { 'idempotency-key': k },
    });
    expect(d1.lost()).toBe(1);
    await expectProblem(first, 503);
    const retry = await send('POST', path, token, { graceHours: 24 }, k);
    expect(retry.status, retry.text).toBe(200);
    expect(retry.res.headers.get('idempotent-replayed')).toBe('true');
    const rotated = JSON.parse(retry.text) as { secret: string };
    expect(rotated.secret).not.toBe(hook.secret);
    expect(rotated.secret).toBe(await storedSecret(hook.id));
    // Rotated once: the original secret is still the previous one, valid during the grace period.
    const row = await anyShard
      .prepare('SELECT previous_secret_encrypted FROM webhook_subscriptions WHERE id = ?')
      .bind(hook.id)
      .first<{ previous_secret_encrypted: string }>();
    const previous = await decryptSecret(row!.previous_secret_encrypted, await importEncryptionKey(env.ENCRYPTION_KEY));
    expect(previous).toBe(hook.secret);
  });
});
