/**
 * Read replicas through D1's Sessions API (docs/design.md#read-replicas-and-bookmarks): an API request's queries on
 * each data shard run in one D1 session of that shard; the response names each shard's bookmark in `x-d1-bookmark`
 * (`SHARD_1=<bookmark>`), and a request that sends it back opens that shard's session from it (reads its own writes).
 * The control plane is never put in a session. Local D1 has no replicas, so what is checked here is what the Worker
 * does: the header, and the constraint each database's session is opened with (recorded by wrappers around the real
 * local databases), plus the round trips.
 */
import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { BOOKMARK_HEADER, isBookmark, parseBookmarks } from '../../src/db/session.ts';
import { type AppEnv, config } from '../../src/env.ts';
import { d1Session } from '../../src/middleware/d1-session.ts';
import { meterD1, otherShard } from '../support/d1-meter.ts';
import { wrapD1 } from '../support/d1-wrap.ts';
import { answerLostD1 } from '../support/faulty-d1.ts';
import {
  ALL_USER_SCOPES,
  callWithVars,
  createPat,
  expectProblem,
  provisionHandleOn,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { countingD1, d1FailingBatchesMatching } from '../support/pipeline-helpers.ts';
import { receiverUrl } from '../support/receivers.ts';
import { insertNotifications, mixedNotifications } from '../support/seed.ts';

type Name = 'DB' | 'SHARD_0' | 'SHARD_1';

/** The real local databases, recording the argument of every `withSession` per binding. */
function recordingDbs() {
  const sessions: Record<Name, (string | undefined)[]> = { DB: [], SHARD_0: [], SHARD_1: [] };
  const vars = {} as Record<Name, D1Database>;
  for (const name of ['DB', 'SHARD_0', 'SHARD_1'] as const) {
    vars[name] = new Proxy(env[name], {
      get(target, prop) {
        if (prop === 'withSession')
          return (constraintOrBookmark?: string) => {
            sessions[name].push(constraintOrBookmark);
            return target.withSession(constraintOrBookmark);
          };
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
  return { vars, sessions };
}

/** An owner's token and one handle on each shard. */
async function setup() {
  const owner = unique('owner');
  const on0 = await provisionHandleOn('SHARD_0', owner);
  const on1 = await provisionHandleOn('SHARD_1', owner);
  return { on0, on1, token: await signJwt({ sub: owner, scope: ALL_USER_SCOPES }) };
}

const hooks = (handle: string) => `/v2/handles/${handle}/webhooks`;

/** The bookmarks a response carries, by shard; fails on a malformed header. */
function bookmarksOf(res: Response): Map<string, string> {
  const parsed = parseBookmarks(res.headers.get(BOOKMARK_HEADER));
  expect(parsed, res.headers.get(BOOKMARK_HEADER) ?? '(none)').not.toBeNull();
  return parsed!;
}

describe('D1 sessions and bookmarks, per shard', () => {
  it('a write answers with x-d1-bookmark naming its handle’s shard; a read sending it back opens that shard’s session from it', async () => {
    const { on1, token } = await setup();
    const { vars, sessions } = recordingDbs();
    const created = await callWithVars(vars, 'POST', hooks(on1), {
      token,
      body: { url: receiverUrl('ok', unique('k')) },
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const written = bookmarksOf(created);
    // Only the shard the write touched has a bookmark; it has D1's form.
    expect([...written.keys()]).toEqual(['SHARD_1']);
    expect(isBookmark(written.get('SHARD_1')!)).toBe(true);
    // A write without a bookmark starts on each shard's primary; the control plane is not put in a session.
    expect(sessions).toEqual({ DB: [], SHARD_0: ['first-primary'], SHARD_1: ['first-primary'] });
    const { id } = (await created.json()) as { id: string };

    const read = await callWithVars(vars, 'GET', `${hooks(on1)}/${id}`, {
      token,
      headers: { [BOOKMARK_HEADER]: created.headers.get(BOOKMARK_HEADER)! },
    });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { id: string }).id).toBe(id);
    expect(sessions.SHARD_1).toEqual(['first-primary', written.get('SHARD_1')]);
    expect(sessions.SHARD_0).toEqual(['first-primary', 'first-unconstrained']);
    expect(sessions.DB).toEqual([]);
    // The read's bookmark is at least where the write left the shard (D1 orders bookmarks as strings).
    const after = bookmarksOf(read).get('SHARD_1')!;
    expect(after >= written.get('SHARD_1')!, `${after} ≥ ${written.get('SHARD_1')}`).toBe(true);
  });

  it('a read without a bookmark opens its shard’s session first-unconstrained (a replica may answer)', async () => {
    const { on0, token } = await setup();
    const { vars, sessions } = recordingDbs();
    const res = await callWithVars(vars, 'GET', hooks(on0), { token });
    expect(res.status).toBe(200);
    expect(sessions).toEqual({ DB: [], SHARD_0: ['first-unconstrained'], SHARD_1: ['first-unconstrained'] });
    expect([...bookmarksOf(res).keys()]).toEqual(['SHARD_0']);
  });

  it('a bookmark of another shard is not given to the handle’s shard, and comes back unchanged beside the new one', async () => {
    const { on0, on1, token } = await setup();
    const { vars, sessions } = recordingDbs();
    // A write on the SHARD_0 handle, then a read of the SHARD_1 handle with that bookmark.
    const wrote = await callWithVars(vars, 'POST', hooks(on0), {
      token,
      body: { url: receiverUrl('ok', unique('k')) },
    });
    expect(wrote.status).toBe(201);
    const b0 = bookmarksOf(wrote).get('SHARD_0')!;
    const other = await callWithVars(vars, 'GET', hooks(on1), {
      token,
      headers: { [BOOKMARK_HEADER]: wrote.headers.get(BOOKMARK_HEADER)! },
    });
    expect(other.status).toBe(200);
    // SHARD_1 starts unconstrained, never from SHARD_0's point in history; SHARD_0's session keeps the client's.
    expect(sessions.SHARD_1.at(-1)).toBe('first-unconstrained');
    expect(sessions.SHARD_0.at(-1)).toBe(b0);
    const both = bookmarksOf(other);
    expect(both.get('SHARD_0')).toBe(b0);
    expect(isBookmark(both.get('SHARD_1') ?? '')).toBe(true);
    expect(other.headers.get(BOOKMARK_HEADER)).toBe(`SHARD_0=${b0}, SHARD_1=${both.get('SHARD_1')}`);

    // The latest header still reads the first handle's write; a shard this Worker does not bind is dropped.
    const back = await callWithVars(vars, 'GET', hooks(on0), {
      token,
      headers: { [BOOKMARK_HEADER]: `${other.headers.get(BOOKMARK_HEADER)}, SHARD_7=${b0}` },
    });
    expect(back.status).toBe(200);
    expect(((await back.json()) as { data: unknown[] }).data).toHaveLength(1);
    expect(sessions.SHARD_0.at(-1)).toBe(b0);
    expect([...bookmarksOf(back).keys()]).toEqual(['SHARD_0', 'SHARD_1']);

    // A write starts on the primary with or without a bookmark (the primary is past it); the other shard's entry
    // still comes back unchanged.
    const write1 = await callWithVars(vars, 'POST', hooks(on1), {
      token,
      body: { url: receiverUrl('ok', unique('k')) },
      headers: { [BOOKMARK_HEADER]: back.headers.get(BOOKMARK_HEADER)! },
    });
    expect(write1.status).toBe(201);
    expect(sessions.SHARD_0.at(-1)).toBe('first-primary');
    expect(sessions.SHARD_1.at(-1)).toBe('first-primary');
    const afterWrite = bookmarksOf(write1);
    expect(afterWrite.get('SHARD_0')).toBe(bookmarksOf(back).get('SHARD_0'));
    const before1 = bookmarksOf(back).get('SHARD_1')!;
    expect(afterWrite.get('SHARD_1')! > before1, `${afterWrite.get('SHARD_1')} > ${before1}`).toBe(true);
    expect(sessions.DB).toEqual([]);
  });

  it('a malformed x-d1-bookmark is a 400 problem naming the header, before anything is read or written', async () => {
    const { on0, token } = await setup();
    const { vars, sessions } = recordingDbs();
    const count = async () =>
      (await env.SHARD_0.prepare('SELECT count(*) AS n FROM webhook_subscriptions WHERE handle = ?')
        .bind(on0)
        .first<{ n: number }>())!.n;
    const before = await count();
    const good = '00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf891683';
    for (const bad of [
      'not-a-bookmark',
      // A bare bookmark names no database.
      good,
      `SHARD_0=00000085-0000024c-00004c6d`,
      'SHARD_0=first-primary',
      `DB=${good}`,
      `SHARD_0=${good}, SHARD_0=${good}`,
      `SHARD_0=${good},`,
      `SHARD_01=${good}`,
    ]) {
      for (const [method, body] of [
        ['POST', { url: receiverUrl('ok', unique('k')) }],
        ['GET', undefined],
      ] as const) {
        const res = await callWithVars(vars, method, hooks(on0), {
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
    expect(sessions).toEqual({ DB: [], SHARD_0: [], SHARD_1: [] });
    expect(await count()).toBe(before);
  });

  it('a feed read with a bookmark still costs one round trip: the control plane and the handle’s shard at once', async () => {
    const owner = unique('u');
    const handle = await provisionHandleOn('SHARD_1', owner);
    await insertNotifications(handle, mixedNotifications(5, Date.parse('2026-02-01T00:00:00Z')));
    const { token } = await createPat(owner, { scopes: ['notifications:read'] });
    const feed = `/v2/handles/${handle}/notifications?limit=5`;
    // The first use records the token's last use and caches the handle's shard in this isolate.
    const first = await callWithVars(meterD1().vars, 'GET', feed, { token });
    expect(first.status).toBe(200);
    const bookmark = first.headers.get(BOOKMARK_HEADER)!;
    expect([...bookmarksOf(first).keys()]).toEqual(['SHARD_1']);
    for (const headers of [{}, { [BOOKMARK_HEADER]: bookmark }] as Record<string, string>[]) {
      const meter = meterD1();
      const res = await callWithVars(meter.vars, 'GET', feed, { token, headers });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { data: unknown[] }).data).toHaveLength(5);
      expect(meter.counts).toEqual({ DB: 1, SHARD_1: 1, [otherShard('SHARD_1')]: 0 });
      expect(meter.peakInFlight).toBe(2);
    }
  });

  it('the environment with the sessions in place reuses the config parsed for the Worker’s, not a new parse each request', async () => {
    const app = new Hono<AppEnv>();
    app.use(d1Session());
    app.get('/probe', (c) =>
      c.json({
        sessionsInPlace: c.env !== env && c.env.SHARD_0 !== env.SHARD_0,
        sameConfig: config(c.env) === config(env),
      }),
    );
    for (let i = 0; i < 2; i++) {
      const res = await app.fetch(new Request('https://notify.test/probe'), env);
      expect(await res.json()).toEqual({ sessionsInPlace: true, sameConfig: true });
    }
  });
});

// A wrapper that handed withSession to the real database would switch its fault or count off for every API request.
describe('test D1 wrappers inside a D1 session', () => {
  it('an armed lost answer fires through a session of the wrapper, and through an API write on the handle’s shard', async () => {
    const d1 = answerLostD1(env.SHARD_0);
    d1.loseAnswerOf(/SELECT 1 AS lost_probe/, 'before');
    const session = d1.db.withSession('first-primary');
    await expect(session.prepare('SELECT 1 AS lost_probe').all()).rejects.toThrow(/Network connection lost/);
    expect(d1.lost()).toBe(1);

    const { on0, token } = await setup();
    const api = answerLostD1(env.SHARD_0);
    api.loseAnswerOf(/insert into "webhook_subscriptions"/i);
    const res = await callWithVars({ SHARD_0: api.db }, 'POST', hooks(on0), {
      token,
      body: { url: receiverUrl('ok', unique('k')) },
    });
    expect(api.lost()).toBe(1);
    await expectProblem(res, 503);
  });

  it('failing batches, round-trip counts and the metered bindings apply to session queries', async () => {
    const failing = d1FailingBatchesMatching(env.SHARD_1, /session_fail_probe/);
    const s = failing.db.withSession('first-unconstrained');
    await expect(s.batch([s.prepare('SELECT 1 AS session_fail_probe')])).rejects.toThrow(/Network connection lost/);
    expect(failing.failures()).toBe(1);

    const counting = countingD1(env.SHARD_1);
    const c = counting.db.withSession('first-unconstrained');
    await c.prepare('SELECT 1').first();
    await c.batch([c.prepare('SELECT 1'), c.prepare('SELECT 2')]);
    expect(counting.count()).toBe(2);
    // The session is the real one: it has a bookmark after its queries.
    expect(isBookmark(c.getBookmark() ?? '')).toBe(true);

    const meter = meterD1();
    const m = meter.vars.SHARD_0.withSession('first-primary');
    await m.prepare('SELECT 1').all();
    await m.batch([m.prepare('SELECT 1')]);
    expect(meter.counts).toEqual({ DB: 0, SHARD_0: 2, SHARD_1: 0 });

    let touched = 0;
    const watched = wrapD1(env.DB, {
      prepare: (target, q) => {
        touched++;
        return target.prepare(q);
      },
    });
    await watched.withSession('first-primary').prepare('SELECT 1').first();
    expect(touched).toBe(1);
  });
});
