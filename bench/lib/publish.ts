/** The delivery stages' publishing (bench/run.ts, bench/shards.ts): one loop, so both count what they balance alike. */
import { send } from './measure.ts';

/** Requests in flight while a delivery stage publishes. */
const PUBLISHERS = 4;

/**
 * Publishes `events` events through `POST …/events`, PUBLISHERS in flight, event `i` (body `body(i)`) to
 * `handles[i % handles.length]`, and answers how many deliveries they queued (recipients `queued` or `pending`): the
 * number a delivery stage balances the rows and the receiver's count against. Any answer but 202 ends the bench.
 */
export async function publishEvents(
  base: string,
  pat: string,
  handles: readonly string[],
  events: number,
  body: (i: number) => string,
): Promise<number> {
  let published = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: PUBLISHERS }, async () => {
      for (let i = next++; i < events; i = next++) {
        const url = `${base}/v2/handles/${handles[i % handles.length]}/events`;
        const res = await send('POST', url, { authorization: `Bearer ${pat}` }, body(i));
        if (res.status !== 202) throw new Error(`bench: ingest answered ${res.status}: ${res.text.slice(0, 300)}`);
        const recipients = JSON.parse(res.text).recipients as Array<{ status: string }>;
        published += recipients.filter((x) => x.status === 'queued' || x.status === 'pending').length;
      }
    }),
  );
  return published;
}

/** Events per `POST …/events/batch` call (the route's maximum). */
const BATCH = 100;

/**
 * Publishes `events` events to `handle` through `POST …/events/batch`, BATCH per call, one call in flight at a time
 * (a backfill's shape), and answers how many were stored. Any answer but 200, or a refused event, ends the bench.
 */
export async function publishBatches(
  base: string,
  pat: string,
  handle: string,
  events: number,
  body: (i: number) => string,
): Promise<number> {
  let stored = 0;
  for (let first = 0; first < events; first += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, events - first) }, (_, k) => JSON.parse(body(first + k)));
    const url = `${base}/v2/handles/${handle}/events/batch`;
    const res = await send('POST', url, { authorization: `Bearer ${pat}` }, JSON.stringify({ events: batch }));
    const answer = res.status === 200 ? (JSON.parse(res.text) as { stored: number; refused: number }) : null;
    if (!answer || answer.refused > 0)
      throw new Error(`bench: batch ingest answered ${res.status}: ${res.text.slice(0, 300)}`);
    stored += answer.stored;
  }
  return stored;
}
