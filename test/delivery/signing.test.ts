/**
 * Standard Webhooks signing (docs/design.md#webhook-request): the published test vectors, a cross-check against the
 * independent `standardwebhooks` library (fast-check, fixed seed), verification rules, and one real signed POST to a
 * receiver on 127.0.0.1 whose recorded bytes the library verifies.
 */
import fc from 'fast-check';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { newWebhookSecret, signatureHeader, signPayload, verifySignature } from '../../src/delivery/signing.ts';
import { unique } from '../support/helpers.ts';
import { hits, receiverUrl } from '../support/receivers.ts';

const PROPERTY = { seed: 20260801, numRuns: 100 } as const;

const VECTORS = [
  {
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    timestamp: 1614265330,
    body: '{"test": 2432232314}',
    signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  },
  {
    secret: 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD',
    id: 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk',
    timestamp: 1649367553,
    body: '{"email":"test@example.com","username":"test_user"}',
    signature: 'v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=',
  },
] as const;

const nowSeconds = () => Math.floor(Date.now() / 1000);

function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Headers as a receiver gets them, for the library's `verify`. */
function libHeaders(id: string, timestamp: number | string, signature: string) {
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature };
}

/** V8's `Error` (workerd runs V8; the workers types leave `stackTraceLimit` out). */
const V8Error = Error as ErrorConstructor & { stackTraceLimit: number };

/**
 * The library's verdict: true, or false for a verification error (anything else is rethrown).
 * Its errors copy `new Error(message).stack`, and the test pool formats every stack through source maps (~7 ms each,
 * several times that on a loaded machine): the property tests below refuse hundreds of signatures, so no frames are
 * captured while the library runs. The verdict does not depend on the stack.
 */
function libVerifies(secret: string, body: string, headers: Record<string, string>): boolean {
  const frames = V8Error.stackTraceLimit;
  V8Error.stackTraceLimit = 0;
  try {
    new Webhook(secret).verify(body, headers, { jsonParse: false });
    return true;
  } catch (err) {
    if (err instanceof WebhookVerificationError) return false;
    throw err;
  } finally {
    V8Error.stackTraceLimit = frames;
  }
}

// Arbitraries. Secrets: 24–64 random bytes (the range Standard Webhooks allows), `whsec_`-prefixed base64.
const secretArb = fc.uint8Array({ minLength: 24, maxLength: 64 }).map((b) => `whsec_${toBase64(b)}`);
const idArb = fc.oneof(
  fc.uuid().map((u) => `dlv_${u}`),
  fc.string({
    unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-'),
    minLength: 1,
    maxLength: 40,
  }),
);
/** Within the library's ±5 min tolerance of now. */
const timestampArb = fc.integer({ min: -290, max: 290 }).map((d) => nowSeconds() + d);
const bodyArb = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
  fc.string({ unit: 'grapheme', maxLength: 200 }), // any text, including multi-byte
  fc.string({ unit: 'binary', maxLength: 200 }), // lone surrogates too: both sides must encode them as U+FFFD alike
);

describe('Standard Webhooks test vectors', () => {
  for (const v of VECTORS) {
    it(`signs ${v.id} exactly as the specification does`, async () => {
      expect(await signPayload(v.secret, v.id, v.timestamp, v.body)).toBe(v.signature);
      expect(await signatureHeader([v.secret], v.id, v.timestamp, v.body)).toBe(v.signature);
      // the library agrees with the vector too, so the cross-checks below compare against a correct reference
      expect(new Webhook(v.secret).sign(v.id, new Date(v.timestamp * 1000), v.body)).toBe(v.signature);
    });

    it(`verifies ${v.id} at its own time, and refuses it 5 min + 1 s later`, async () => {
      const headers = { id: v.id, timestamp: String(v.timestamp), signature: v.signature };
      expect(await verifySignature(v.secret, headers, v.body, v.timestamp)).toBe(true);
      expect(await verifySignature(v.secret, headers, v.body, v.timestamp + 300)).toBe(true);
      expect(await verifySignature(v.secret, headers, v.body, v.timestamp + 301)).toBe(false);
      expect(await verifySignature(v.secret, headers, v.body, v.timestamp - 301)).toBe(false);
      // with the default clock (now, years later) it is stale
      expect(await verifySignature(v.secret, headers, v.body)).toBe(false);
    });
  }

  it('accepts a secret without the whsec_ prefix as the same key', async () => {
    const v = VECTORS[0];
    expect(await signPayload(v.secret.slice('whsec_'.length), v.id, v.timestamp, v.body)).toBe(v.signature);
  });
});

describe('newWebhookSecret', () => {
  it('is whsec_ + base64 of 32 random bytes, different every time', () => {
    const secrets = Array.from({ length: 20 }, () => newWebhookSecret());
    for (const s of secrets) {
      expect(s).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(atob(s.slice('whsec_'.length))).toHaveLength(32);
    }
    expect(new Set(secrets).size).toBe(secrets.length);
  });
});

describe('cross-check with the standardwebhooks library', () => {
  it('a header signed with one secret (newWebhookSecret) verifies with the library', async () => {
    await fc.assert(
      fc.asyncProperty(idArb, timestampArb, bodyArb, async (id, ts, body) => {
        const secret = newWebhookSecret();
        const header = await signatureHeader([secret], id, ts, body);
        expect(header).toBe(new Webhook(secret).sign(id, new Date(ts * 1000), body));
        expect(libVerifies(secret, body, libHeaders(id, ts, header))).toBe(true);
      }),
      PROPERTY,
    );
  });

  it('secrets of any allowed length (24–64 bytes) sign identically to the library', async () => {
    await fc.assert(
      fc.asyncProperty(secretArb, idArb, timestampArb, bodyArb, async (secret, id, ts, body) => {
        expect(await signPayload(secret, id, ts, body)).toBe(new Webhook(secret).sign(id, new Date(ts * 1000), body));
      }),
      PROPERTY,
    );
  });

  it('during rotation the two-signature header verifies with EITHER secret alone, not with a third', async () => {
    await fc.assert(
      fc.asyncProperty(
        secretArb,
        secretArb,
        secretArb,
        idArb,
        timestampArb,
        bodyArb,
        async (current, previous, other, id, ts, body) => {
          fc.pre(new Set([current, previous, other]).size === 3);
          const header = await signatureHeader([current, previous], id, ts, body);
          const parts = header.split(' ');
          expect(parts).toHaveLength(2);
          expect(parts[0]).toBe(await signPayload(current, id, ts, body)); // current first
          expect(parts[1]).toBe(await signPayload(previous, id, ts, body));
          const h = libHeaders(id, ts, header);
          expect(libVerifies(current, body, h)).toBe(true);
          expect(libVerifies(previous, body, h)).toBe(true);
          expect(libVerifies(other, body, h)).toBe(false);
          // and our own verifier agrees
          const ours = { id, timestamp: String(ts), signature: header };
          expect(await verifySignature(current, ours, body)).toBe(true);
          expect(await verifySignature(previous, ours, body)).toBe(true);
          expect(await verifySignature(other, ours, body)).toBe(false);
        },
      ),
      PROPERTY,
    );
  });

  it('a tampered body, id or timestamp fails the library', async () => {
    await fc.assert(
      fc.asyncProperty(
        secretArb,
        idArb,
        timestampArb,
        bodyArb,
        fc.string({ minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 5 }),
        async (secret, id, ts, body, extra, shift) => {
          const sig = await signatureHeader([secret], id, ts, body);
          expect(libVerifies(secret, body, libHeaders(id, ts, sig))).toBe(true);
          expect(libVerifies(secret, body + extra, libHeaders(id, ts, sig))).toBe(false);
          expect(libVerifies(secret, body, libHeaders(id + extra, ts, sig))).toBe(false);
          expect(libVerifies(secret, body, libHeaders(id, ts + shift, sig))).toBe(false);
          expect(libVerifies(secret, body, libHeaders(id, ts - shift, sig))).toBe(false);
        },
      ),
      PROPERTY,
    );
  });

  it('verifySignature accepts the library’s own signatures, and refuses tampering', async () => {
    await fc.assert(
      fc.asyncProperty(
        secretArb,
        idArb,
        fc.integer({ min: 1_600_000_000, max: 2_000_000_000 }),
        bodyArb,
        async (secret, id, ts, body) => {
          const signature = new Webhook(secret).sign(id, new Date(ts * 1000), body);
          const headers = { id, timestamp: String(ts), signature };
          expect(await verifySignature(secret, headers, body, ts)).toBe(true);
          expect(await verifySignature(secret, headers, `${body} `, ts)).toBe(false);
          expect(await verifySignature(secret, { ...headers, id: `${id}x` }, body, ts)).toBe(false);
          expect(await verifySignature(secret, { ...headers, timestamp: String(ts + 1) }, body, ts)).toBe(false);
        },
      ),
      PROPERTY,
    );
  });
});

describe('verifySignature', () => {
  const secret = VECTORS[1].secret;
  const id = 'msg_verify';
  const body = '{"type":"order.paid"}';

  it('refuses timestamps more than 5 minutes from now, either way, and accepts up to 5 minutes', async () => {
    const now = nowSeconds();
    for (const [offset, ok] of [
      [0, true],
      [-300, true],
      [300, true],
      [-301, false],
      [301, false],
      [-3600, false],
      [86_400, false],
    ] as const) {
      const ts = now + offset;
      const signature = new Webhook(secret).sign(id, new Date(ts * 1000), body);
      expect(
        await verifySignature(secret, { id, timestamp: String(ts), signature }, body, now),
        `offset ${offset}`,
      ).toBe(ok);
    }
  });

  it('honours a custom tolerance', async () => {
    const ts = 1_700_000_000;
    const signature = await signPayload(secret, id, ts, body);
    const headers = { id, timestamp: String(ts), signature };
    expect(await verifySignature(secret, headers, body, ts + 30, 30)).toBe(true);
    expect(await verifySignature(secret, headers, body, ts + 31, 30)).toBe(false);
  });

  it('refuses bad signatures: another secret, a flipped character, another version, garbage, empty', async () => {
    const ts = nowSeconds();
    const good = await signPayload(secret, id, ts, body);
    const flipped = `${good.slice(0, 10)}${good[10] === 'A' ? 'B' : 'A'}${good.slice(11)}`;
    for (const signature of [
      await signPayload(VECTORS[0].secret, id, ts, body),
      flipped,
      good.replace(/^v1,/, 'v2,'),
      good.replace(/^v1,/, ''),
      good.slice(0, -1),
      'v1,',
      'garbage',
      '',
    ]) {
      expect(await verifySignature(secret, { id, timestamp: String(ts), signature }, body), signature).toBe(false);
    }
    expect(await verifySignature(secret, { id, timestamp: String(ts), signature: good }, body)).toBe(true);
  });

  it('accepts a header listing several signatures when any one matches', async () => {
    const ts = nowSeconds();
    const good = await signPayload(secret, id, ts, body);
    const other = await signPayload(VECTORS[0].secret, id, ts, body);
    expect(await verifySignature(secret, { id, timestamp: String(ts), signature: `${other} ${good}` }, body)).toBe(
      true,
    );
    expect(await verifySignature(secret, { id, timestamp: String(ts), signature: `v1a,xyz ${good}` }, body)).toBe(true);
  });

  it('refuses a timestamp that is not an integer', async () => {
    const ts = nowSeconds();
    const signature = await signPayload(secret, id, ts, body);
    for (const timestamp of ['', 'abc', `${ts}.5`, 'NaN']) {
      expect(await verifySignature(secret, { id, timestamp, signature }, body), timestamp).toBe(false);
    }
  });
});

describe('over the wire', () => {
  it('a signed POST arrives at a real receiver with bytes the library still verifies', async () => {
    const key = unique('signed');
    const secret = newWebhookSecret();
    const id = `dlv_${crypto.randomUUID()}`;
    const ts = nowSeconds();
    // multi-byte text, an escaped line separator, and characters some transports rewrite
    const body = JSON.stringify({
      id,
      type: 'order.paid',
      handle: 'demo-store',
      severity: 'info',
      timestamp: new Date(ts * 1000).toISOString(),
      data: { customer: 'Zoë Ångström 🚚', note: 'line1\nline2\u2028', amount: 1234.5, tags: ['a&b', '<c>'] },
      test: false,
    });
    const signature = await signatureHeader([secret], id, ts, body);
    const res = await fetch(receiverUrl('ok', key), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(ts),
        'webhook-signature': signature,
      },
      body,
    });
    expect(res.status).toBe(200);

    const [hit] = await hits(key);
    expect(hit!.body).toBe(body);
    expect(hit!.bytes).toBe(new TextEncoder().encode(body).length);
    expect(hit!.headers['webhook-signature']).toBe(signature);
    // verified exactly as a receiver would: the recorded headers (all of them) and the recorded body
    expect(new Webhook(secret).verify(hit!.body, hit!.headers)).toEqual(JSON.parse(body));
    expect(libVerifies(newWebhookSecret(), hit!.body, hit!.headers)).toBe(false);
  });
});
