/**
 * Read replicas through D1's Sessions API (docs/design.md#read-replicas-and-bookmarks): every API request runs in one
 * D1 session; the response carries its bookmark in `x-d1-bookmark`, and a request that sends it back opens its session
 * from it (reads its own writes). Local D1 has no replicas, so what is checked here is what the Worker does: the
 * header, and the constraint each session is opened with (recorded by a wrapper around the real local database).
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { BOOKMARK_HEADER, isBookmark } from '../../src/db/session.ts';
import { ALL_USER_SCOPES, callWithVars, expectProblem, provisionHandle, signJwt, unique } from '../support/helpers.ts';
import { receiverUrl } from '../support/receivers.ts';

/** The real local database, recording the argument of every `withSession`. */
function recordingDb() {
  const sessions: (string | undefined)[] = [];
  const db = {
    prepare: (q: string) => env.DB.prepare(q),
    batch: (s: D1PreparedStatement[]) => env.DB.batch(s),
    exec: (q: string) => env.DB.exec(q),
    withSession: (constraintOrBookmark?: string) => {
      sessions.push(constraintOrBookmark);
      return env.DB.withSession(constraintOrBookmark);
    },
  } as unknown as D1Database;
  return { db, sessions };
}

async function setup() {
  const owner = unique('owner');
  const handle = await provisionHandle(owner);
  return { handle, token: await signJwt({ sub: owner, scope: ALL_USER_SCOPES }) };
}

describe('D1 sessions and bookmarks', () => {
  it('a write answers with x-d1-bookmark, and a read that sends it back opens its session from it', async () => {
    const { handle, token } = await setup();
    const { db, sessions } = recordingDb();
    const vars = { DB: db };
    const created = await callWithVars(vars, 'POST', `/v2/handles/${handle}/webhooks`, {
      token,
      body: { url: receiverUrl('ok', unique('k')) },
    });
    expect(created.status).toBe(201);
    const written = created.headers.get(BOOKMARK_HEADER);
    expect(written, 'bookmark of the write').not.toBeNull();
    expect(isBookmark(written!), written!).toBe(true);
    // A write without a bookmark starts on the primary.
    expect(sessions).toEqual(['first-primary']);
    const { id } = (await created.json()) as { id: string };

    const read = await callWithVars(vars, 'GET', `/v2/handles/${handle}/webhooks/${id}`, {
      token,
      headers: { [BOOKMARK_HEADER]: written! },
    });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { id: string }).id).toBe(id);
    expect(sessions).toEqual(['first-primary', written]);
    // The read's own bookmark is at least where the write left the database (bookmarks order as strings).
    const after = read.headers.get(BOOKMARK_HEADER);
    expect(after !== null && isBookmark(after) && after >= written!, `${after} ≥ ${written}`).toBe(true);
  });

  it('a read without a bookmark uses first-unconstrained (a replica may answer)', async () => {
    const { handle, token } = await setup();
    const { db, sessions } = recordingDb();
    const res = await callWithVars({ DB: db }, 'GET', `/v2/handles/${handle}/webhooks`, { token });
    expect(res.status).toBe(200);
    expect(sessions).toEqual(['first-unconstrained']);
    expect(isBookmark(res.headers.get(BOOKMARK_HEADER) ?? '')).toBe(true);
  });

  it('a malformed x-d1-bookmark is a 400 problem naming the header, before anything is read or written', async () => {
    const { handle, token } = await setup();
    const { db, sessions } = recordingDb();
    const count = async () =>
      (await env.DB.prepare('SELECT count(*) AS n FROM webhook_subscriptions WHERE handle = ?')
        .bind(handle)
        .first<{ n: number }>())!.n;
    const before = await count();
    for (const bad of ['not-a-bookmark', '00000085-0000024c-00004c6d', 'first-primary', `${'0'.repeat(8)}-x`]) {
      for (const [method, body] of [
        ['POST', { url: receiverUrl('ok', unique('k')) }],
        ['GET', undefined],
      ] as const) {
        const res = await callWithVars({ DB: db }, method, `/v2/handles/${handle}/webhooks`, {
          token,
          headers: { [BOOKMARK_HEADER]: bad },
          ...(body ? { body } : {}),
        });
        const problem = await expectProblem(res, 400);
        expect(problem.errors, `${method} ${bad}`).toEqual([
          expect.objectContaining({ path: `header.${BOOKMARK_HEADER}` }),
        ]);
        expect(res.headers.get(BOOKMARK_HEADER)).toBeNull();
      }
    }
    expect(sessions).toEqual([]);
    expect(await count()).toBe(before);
  });
});
