/**
 * The bench's baselines: the least a Worker can do for each job, run in the same Miniflare, against the same D1
 * database and the same loopback receiver as the service, so a ratio cancels out the machine's noise.
 *
 * - `GET /read?handle=`: a bare Hono route doing ONE indexed D1 SELECT of a feed page (the feed's own columns and
 *   index, limit 51), answered as JSON.
 * - `POST /write`: a bare route doing one INSERT of a notification row and one queue send.
 * - `POST /raw-deliver`: `n` Standard Webhooks-signed `fetch` POSTs to the given URLs at concurrency 6 (the
 *   per-invocation connection limit in production), each counted as delivered on a 2xx.
 *
 * No auth, validation, throttles or logging: this is the floor the service's cost is measured against.
 * Bundled with esbuild by bench/run.ts; never deployed.
 */
import { Hono } from 'hono';

interface BaselineEnv {
  DB: D1Database;
  BASELINE_QUEUE: Queue<{ id: string }>;
}

const app = new Hono<{ Bindings: BaselineEnv }>();

app.get('/read', async (c) => {
  const handle = c.req.query('handle') ?? '';
  const { results } = await c.env.DB.prepare(
    `SELECT id, type, severity, status, source, source_event_id, occurred_at, recipient_count, recipients, open_count,
       succeeded_count, dead_count, created_at, updated_at
     FROM notifications WHERE handle = ?1 ORDER BY id DESC LIMIT 51`,
  )
    .bind(handle)
    .all();
  return c.json({ data: results.slice(0, 50), nextCursor: results.length > 50 ? String(results[49]!.id) : null });
});

let seq = 0;
app.post('/write', async (c) => {
  const body = await c.req.json<{ handle: string; type: string; data: unknown }>();
  const now = new Date().toISOString();
  // Unique, time-ordered enough for a primary key; the bench deletes these rows afterwards.
  const id = `ntf_BASE${Date.now().toString(36).toUpperCase()}${(seq++).toString(36).toUpperCase().padStart(8, '0')}${Math.random().toString(36).slice(2, 8).toUpperCase()}`;
  await c.env.DB.prepare(
    `INSERT INTO notifications (id, handle, type, severity, data, source, occurred_at, status, recipient_count, recipients,
       open_count, succeeded_count, dead_count, created_at, updated_at)
     VALUES (?1, ?2, ?3, 'info', ?4, 'bench-baseline', ?5, 'delivering', 3, '{}', 3, 0, 0, ?5, ?5)`,
  )
    .bind(id, body.handle, body.type, JSON.stringify(body.data), now)
    .run();
  await c.env.BASELINE_QUEUE.send({ id });
  return c.json({ notificationId: id }, 202);
});

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    const raw = Uint8Array.from(atob(secret.replace(/^whsec_/, '')), (ch) => ch.charCodeAt(0));
    key = crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    keys.set(secret, key);
  }
  return key;
}

async function sign(secret: string, id: string, ts: number, body: string): Promise<string> {
  const mac = new Uint8Array(
    await crypto.subtle.sign('HMAC', await hmacKey(secret), encoder.encode(`${id}.${ts}.${body}`)),
  );
  let bin = '';
  for (const b of mac) bin += String.fromCharCode(b);
  return `v1,${btoa(bin)}`;
}

/** The production per-invocation limit on simultaneous outbound connections. */
const CONCURRENCY = 6;

app.post('/raw-deliver', async (c) => {
  const job = await c.req.json<{
    targets: Array<{ url: string; secret: string }>;
    n: number;
    prefix: string;
    payload: unknown;
  }>();
  let next = 0;
  let delivered = 0;
  let failed = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= job.n) return;
      const target = job.targets[i % job.targets.length]!;
      const id = `${job.prefix}${i.toString().padStart(6, '0')}`;
      const ts = Math.floor(Date.now() / 1000);
      const body = JSON.stringify({ type: 'order.created', timestamp: new Date().toISOString(), data: job.payload });
      try {
        const res = await fetch(target.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'webhook-id': id,
            'webhook-timestamp': String(ts),
            'webhook-signature': await sign(target.secret, id, ts, body),
          },
          body,
        });
        await res.arrayBuffer();
        if (res.ok) delivered++;
        else failed++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return c.json({ delivered, failed });
});

export default app;
