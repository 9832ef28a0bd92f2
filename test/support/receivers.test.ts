/**
 * The test webhook receivers (test/support/node/receivers.ts) answer as documented when called with `fetch` from inside
 * workerd, and record what they saw. Other tests rely on these scenarios, so each one is pinned here.
 */
import { describe, expect, it } from 'vitest';
import { unique } from './helpers.ts';
import {
  clearHits,
  type Hit,
  hits,
  receiverBase,
  receiverPort,
  receiverUrl,
  setMode,
  waitForHits,
} from './receivers.ts';

const HUGE_BYTES = 50 * 1024 * 1024;

function post(url: string, body: string, headers: Record<string, string> = {}, init: RequestInit = {}) {
  return fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers }, ...init });
}

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  const value = await f();
  return { value, ms: Date.now() - start };
}

/** Polls the hits of `key` until `pred` holds for them. */
async function eventually(key: string, pred: (hs: Hit[]) => boolean, timeoutMs = 10_000): Promise<Hit[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hs = await hits(key);
    if (pred(hs)) return hs;
    if (Date.now() > deadline) throw new Error(`condition not met for ${key}: ${JSON.stringify(hs)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('receivers: control API', () => {
  it('is reachable on 127.0.0.1 at the injected port', async () => {
    expect(Number.isInteger(receiverPort())).toBe(true);
    expect(receiverBase()).toBe(`http://127.0.0.1:${receiverPort()}`);
    const res = await fetch(`${receiverBase()}/_health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  it('builds receiver URLs with the scenario, the key and the query', () => {
    const url = new URL(receiverUrl('slow-large', 'k 1', { bytes: 10, ms: 'x' }));
    expect(url.origin).toBe(receiverBase());
    expect(url.pathname).toBe('/r/slow-large/k%201');
    expect(Object.fromEntries(url.searchParams)).toEqual({ bytes: '10', ms: 'x' });
  });

  it('records every request with method, path, query, all headers, body, byte length, time and answer', async () => {
    const key = unique('rec');
    const body = JSON.stringify({ type: 'order.paid', note: 'café ✓ 🚚' });
    const before = Date.now();
    const res = await post(`${receiverUrl('ok', key, { a: 1, b: 'two' })}`.replace('?', '/extra/path?'), body, {
      'webhook-id': 'msg_1',
      'x-custom': 'yes',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });

    const [hit, ...rest] = await hits(key);
    expect(rest).toEqual([]);
    expect(hit).toMatchObject({
      method: 'POST',
      path: `/r/ok/${key}/extra/path`,
      query: { a: '1', b: 'two' },
      body,
      bytes: new TextEncoder().encode(body).length,
      response: { status: 200, body: '{"ok":true}', aborted: false },
    });
    expect(hit!.bytes).toBeGreaterThan(body.length); // multi-byte characters are counted as bytes
    expect(hit!.headers).toMatchObject({
      'webhook-id': 'msg_1',
      'x-custom': 'yes',
      'content-type': 'application/json',
      'content-length': String(hit!.bytes),
      host: `127.0.0.1:${receiverPort()}`,
    });
    expect(hit!.receivedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(hit!.receivedAt).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('keeps keys apart, keeps order, and clears one key', async () => {
    const a = unique('iso-a');
    const b = unique('iso-b');
    for (const n of [1, 2, 3]) await post(receiverUrl('ok', a), `{"n":${n}}`);
    await post(receiverUrl('fail', b), '{}');
    expect((await hits(a)).map((h) => JSON.parse(h.body).n)).toEqual([1, 2, 3]);
    const seqs = (await hits(a)).map((h) => h.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect((await hits(b)).map((h) => h.response?.status)).toEqual([500]);

    await clearHits(a);
    expect(await hits(a)).toEqual([]);
    expect(await hits(b)).toHaveLength(1);
  });

  it('answers 404 for an unknown scenario (and still records it)', async () => {
    const key = unique('unknown');
    expect((await post(receiverUrl('nope', key), '{}')).status).toBe(404);
    expect((await hits(key))[0]?.response?.status).toBe(404);
  });

  it('waitForHits waits for late requests and fails with what arrived', async () => {
    const key = unique('wait');
    const pending = waitForHits(key, 2, 5_000);
    await post(receiverUrl('ok', key), '{"n":1}');
    setTimeout(() => void post(receiverUrl('ok', key), '{"n":2}'), 100);
    expect((await pending).map((h) => h.body)).toEqual(['{"n":1}', '{"n":2}']);
    await expect(waitForHits(key, 3, 200)).rejects.toThrow(/waitForHits\(.*, 3\): 2 after 200 ms/);
  });
});

describe('receivers: scenarios', () => {
  it('fail answers 500 every time', async () => {
    const key = unique('fail');
    for (let i = 0; i < 3; i++)
      expect((await post(receiverUrl('fail', key), '{}', { 'webhook-id': 'same' })).status).toBe(500);
  });

  it('flaky fails the first request of each webhook-id, then succeeds', async () => {
    const key = unique('flaky');
    const send = async (id: string) => (await post(receiverUrl('flaky', key), '{}', { 'webhook-id': id })).status;
    expect(await send('msg_a')).toBe(500);
    expect(await send('msg_a')).toBe(200);
    expect(await send('msg_b')).toBe(500);
    expect(await send('msg_a')).toBe(200);
    expect(await send('msg_b')).toBe(200);
    // the memory is per key: the same id under another key starts over
    const other = unique('flaky');
    expect((await post(receiverUrl('flaky', other), '{}', { 'webhook-id': 'msg_a' })).status).toBe(500);
  });

  it('slow waits ?ms before answering 200', async () => {
    const key = unique('slow');
    const { value: res, ms } = await timed(() => post(receiverUrl('slow', key, { ms: 300 }), '{}'));
    expect(res.status).toBe(200);
    expect(ms).toBeGreaterThanOrEqual(280);
  });

  it('slow: a client that gives up is recorded as aborted, and the receiver keeps serving', async () => {
    const key = unique('slow-abort');
    const { ms } = await timed(() =>
      expect(
        post(receiverUrl('slow', key, { ms: 60_000 }), '{}', {}, { signal: AbortSignal.timeout(150) }),
      ).rejects.toThrow(),
    );
    expect(ms).toBeLessThan(5_000);
    const [hit] = await eventually(key, (hs) => hs[0]?.response?.aborted === true);
    expect(hit!.response).toMatchObject({ aborted: true });
    expect((await post(receiverUrl('ok', key), '{}')).status).toBe(200);
  });

  it('redirect answers 302 to the ok receiver under <key>-redirected', async () => {
    const key = unique('redir');
    const res = await post(receiverUrl('redirect', key), '{}', {}, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(`http://127.0.0.1:${receiverPort()}/r/ok/${key}-redirected`);
    expect(await hits(`${key}-redirected`)).toEqual([]);

    const followed = await fetch(receiverUrl('redirect', key));
    expect(followed.status).toBe(200);
    expect(await followed.json()).toEqual({ ok: true });
    expect(await hits(`${key}-redirected`)).toHaveLength(1);
    expect((await hits(key)).map((h) => h.response?.status)).toEqual([302, 302]);
  });

  it('gone answers 410', async () => {
    expect((await post(receiverUrl('gone', unique('gone')), '{}')).status).toBe(410);
  });

  it('ratelimit answers 429 with Retry-After once per webhook-id, then 200', async () => {
    const key = unique('rl');
    const url = receiverUrl('ratelimit', key, { after: 7 });
    const first = await post(url, '{}', { 'webhook-id': 'msg_1' });
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('7');
    expect((await post(url, '{}', { 'webhook-id': 'msg_1' })).status).toBe(200);
    const other = await post(url, '{}', { 'webhook-id': 'msg_2' });
    expect(other.status).toBe(429);
    expect(other.headers.get('retry-after')).toBe('7');
    expect((await hits(key))[0]?.response?.headers['retry-after']).toBe('7');
  });

  it('huge streams 50 MB; a client can read part of it and cancel', async () => {
    const key = unique('huge');
    const res = await post(receiverUrl('huge', key), '{}');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(HUGE_BYTES));
    const reader = res.body!.getReader();
    let read = 0;
    while (read < 1024 * 1024) {
      const { done, value } = await reader.read();
      if (done) break;
      read += value.byteLength;
    }
    expect(read).toBeGreaterThanOrEqual(1024 * 1024);
    const { ms } = await timed(() => reader.cancel());
    expect(ms).toBeLessThan(2_000);
    // The receiver streams under back-pressure: with nobody reading, it stalls far short of 50 MB. (When workerd
    // actually closes the socket after a cancel varies — sometimes at once, sometimes ~10 s later — so the test does
    // not wait for the receiver to record `aborted`.)
    await new Promise((r) => setTimeout(r, 200));
    const [hit] = await hits(key);
    expect(hit!.response).toMatchObject({ status: 200, body: null });
    expect(hit!.response!.bytesSent).toBeGreaterThanOrEqual(read);
    expect(hit!.response!.bytesSent).toBeLessThan(HUGE_BYTES / 2);
    // and it keeps serving others meanwhile
    expect((await post(receiverUrl('ok', key), '{}')).status).toBe(200);
  });

  it('reject-type answers 422 only when the JSON body has that type', async () => {
    const key = unique('rt');
    const url = receiverUrl('reject-type', key, { type: 'order.fulfilled' });
    const rejected = await post(url, JSON.stringify({ id: 'e1', type: 'order.fulfilled' }));
    expect(rejected.status).toBe(422);
    expect(await rejected.json()).toEqual({ error: 'unsupported payload' });
    expect((await post(url, JSON.stringify({ id: 'e2', type: 'order.paid' }))).status).toBe(200);
    expect((await post(url, 'not json')).status).toBe(200);
    expect((await post(url, JSON.stringify({ data: { type: 'order.fulfilled' } }))).status).toBe(200);
  });

  it('slow-large delays only bodies larger than ?bytes', async () => {
    const key = unique('sl');
    const url = receiverUrl('slow-large', key, { bytes: 1000, ms: 800 });
    const small = await timed(() => post(url, JSON.stringify({ pad: 'x'.repeat(900) })));
    expect(small.value.status).toBe(200);
    expect(small.ms).toBeLessThan(600);
    const large = await timed(() => post(url, JSON.stringify({ pad: 'x'.repeat(1000) })));
    expect(large.value.status).toBe(200);
    expect(large.ms).toBeGreaterThanOrEqual(780);
    expect((await hits(key)).map((h) => h.bytes > 1000)).toEqual([false, true]);
  });

  it('mode answers 200 by default, then whatever the key is switched to', async () => {
    const key = unique('mode');
    const url = receiverUrl('mode', key);
    expect((await post(url, '{}')).status).toBe(200);

    await setMode(key, { status: 503, retryAfter: 30, body: 'down for maintenance' });
    const down = await post(url, '{}');
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('30');
    expect(await down.text()).toBe('down for maintenance');

    await setMode(key, { status: 201, delayMs: 250 });
    const slow = await timed(() => post(url, '{}'));
    expect(slow.value.status).toBe(201);
    expect(slow.ms).toBeGreaterThanOrEqual(230);

    await setMode(key, { status: 204 });
    const empty = await post(url, '{}');
    expect(empty.status).toBe(204);
    expect(await empty.text()).toBe('');

    // modes are per key
    expect((await post(receiverUrl('mode', unique('mode')), '{}')).status).toBe(200);
    expect((await hits(key)).map((h) => h.response?.status)).toEqual([200, 503, 201, 204]);
  });

  it('refuses an invalid mode', async () => {
    await expect(setMode(unique('mode'), { status: 42 })).rejects.toThrow(/400/);
    await expect(setMode(unique('mode'), { status: 500, delayMs: -1 })).rejects.toThrow(/400/);
  });
});
