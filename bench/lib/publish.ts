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
