/**
 * The storage stage of `npm run bench` (docs/design.md#storage-budget): D1 bytes per delivered event with 3 webhooks,
 * measured as the growth of D1's own `meta.size_after` over a fresh handle's events, and the capacity table that
 * follows from it (events per day × retention → GB, and days until D1's 10 GB without any purge).
 */

import { send } from './lib/measure.ts';
import type { Receiver } from './lib/receiver.ts';
import { type Actors, api, createWebhooks, eventBody, type startMiniflare } from './run.ts';

type Json = Record<string, any>;

const WEBHOOKS = 3;
const D1_LIMIT_BYTES = 10_000_000_000;
export const CAPACITY_EVENTS_PER_DAY = [10_000, 100_000, 1_000_000];
export const CAPACITY_RETENTION_DAYS = [7, 30, 90, 400];

/** Publishes `events` events to a handle with 3 webhooks, waits until every delivery ended, measures the growth. */
export async function storageStage(
  B: Awaited<ReturnType<typeof startMiniflare>>,
  receiver: Receiver,
  a: Actors,
  events: number,
  progress: (stage: string, message: string) => void,
): Promise<Json> {
  const db = await B.mf.getD1Database('DB', 'subject');
  const handle = 'bench-storage';
  const r = await api(B.subject, 'PUT', `/v2/internal/handles/${handle}`, a.service, {
    displayName: handle,
    ownerUserId: a.ownerId,
  });
  if (r.status !== 200 && r.status !== 201) throw new Error(`bench: provision ${handle} answered ${r.status}`);
  await createWebhooks(B.subject, a, handle, receiver, 'storage', WEBHOOKS);
  const size = async () => ((await db.prepare('SELECT 1').run()).meta as { size_after: number }).size_after;
  const before = await size();
  for (let i = 0; i < events; i += 4) {
    await Promise.all(
      Array.from({ length: Math.min(4, events - i) }, async (_, k) => {
        const res = await send(
          'POST',
          `${B.subject}/v2/handles/${handle}/events`,
          { authorization: `Bearer ${a.pat}` },
          eventBody(i + k),
        );
        if (res.status !== 202) throw new Error(`bench: ingest answered ${res.status}: ${res.text.slice(0, 300)}`);
      }),
    );
  }
  const deadline = performance.now() + 180_000;
  for (;;) {
    const open = await db
      .prepare(`SELECT count(*) AS n FROM notifications WHERE handle = ?1 AND open_count > 0`)
      .bind(handle)
      .first<{ n: number }>();
    if (!open?.n || performance.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 250));
  }
  const rows = await db
    .prepare(
      `SELECT (SELECT count(*) FROM notifications WHERE handle = ?1) AS notifications,
              (SELECT count(*) FROM deliveries WHERE handle = ?1) AS deliveries,
              (SELECT count(*) FROM delivery_attempts WHERE delivery_id IN
                (SELECT id FROM deliveries WHERE handle = ?1)) AS attempts`,
    )
    .bind(handle)
    .first<{ notifications: number; deliveries: number; attempts: number }>();
  const after = await size();
  const bytesPerEvent = (after - before) / events;
  progress(
    'Storage',
    `${events} events × ${WEBHOOKS} webhooks delivered: D1 grew ${(after - before).toLocaleString('en')} bytes = ` +
      `${bytesPerEvent.toFixed(0)} bytes per event (meta.size_after)`,
  );
  return { events, webhooks: WEBHOOKS, sizeBefore: before, sizeAfter: after, bytesPerEvent, rows };
}

/** The capacity table's rows from a bytes-per-event figure. */
export function capacityTable(bytesPerEvent: number): string[] {
  const gb = (bytes: number) => (bytes / 1e9).toFixed(bytes < 1e9 ? 2 : 1);
  return [
    `| events per day | ${CAPACITY_RETENTION_DAYS.map((d) => `${d} days`).join(' | ')} | days until 10 GB, no purge |`,
    `|---|${CAPACITY_RETENTION_DAYS.map(() => '---').join('|')}|---|`,
    ...CAPACITY_EVENTS_PER_DAY.map((epd) => {
      const cells = CAPACITY_RETENTION_DAYS.map((d) => {
        const bytes = bytesPerEvent * epd * d;
        return `${gb(bytes)} GB${bytes > D1_LIMIT_BYTES ? ' ✗' : ''}`;
      });
      return `| ${epd.toLocaleString('en')} | ${cells.join(' | ')} | ${Math.floor(D1_LIMIT_BYTES / (bytesPerEvent * epd))} |`;
    }),
  ];
}
