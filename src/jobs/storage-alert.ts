/**
 * The storage budget's alarm (docs/design.md#storage-budget): each minute the database's size is read from D1's own
 * metadata; past STORAGE_ALERT_PERCENT of D1_SIZE_LIMIT_BYTES, PLATFORM_ALERT_EMAIL gets one mail a day (a row in
 * `platform_alerts` claims the day, and is given back when the mail could not be sent, so the next run tries again).
 */
import { databaseSize, STORAGE_ALERT_PERCENT } from '../archive/storage.ts';
import { shardBindings } from '../db/shards.ts';
import { sendMail } from '../email/send.ts';
import { runContext } from '../env.ts';

/** Reads the size and alerts when it is past the threshold. */
export async function checkStorageBudget(
  env: Env,
  now: Date,
): Promise<{ sizeBytes: number; usedPercent: number; alerted: boolean }> {
  const run = runContext(env);
  // Every database has its own 10 GB: the fullest one decides (docs/design.md#shards).
  const sizes = await Promise.all(
    [...new Set([env.DB, ...shardBindings(env)])].map((d1) => databaseSize(d1, run.cfg.d1SizeLimitBytes)),
  );
  const size = sizes.reduce((a, b) => (b.sizeBytes > a.sizeBytes ? b : a));
  const result = { sizeBytes: size.sizeBytes, usedPercent: size.usedPercent, alerted: false };
  const to = run.cfg.platformAlertEmail;
  if (size.usedPercent < STORAGE_ALERT_PERCENT || !to) return result;
  const key = `d1_size:${now.toISOString().slice(0, 10)}`;
  const claimed = await env.DB.prepare(
    'INSERT INTO platform_alerts (key, sent_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING',
  )
    .bind(key, now.toISOString())
    .run();
  if (claimed.meta.changes !== 1) return result;
  const text =
    `The D1 database of gharart-notify holds ${size.sizeBytes} bytes, ${size.usedPercent} % of its ` +
    `${size.limitBytes}-byte limit. Past the limit every write fails. Lower retentionDays on the busiest handles ` +
    '(PUT /v2/internal/handles/{handle}); the purge job archives and deletes what is older within minutes.';
  const sent = await sendMail(
    run,
    {
      to: { email: to },
      subject: `[gharart-notify] D1 database at ${size.usedPercent} % of its limit`,
      text,
      html: `<p>${text}</p>`,
    },
    { subscriptionId: null, deliveryId: key, handle: '', eventType: 'platform.storage', severity: 'critical' },
    { route: 'platform-alert' },
  ).catch((err: unknown) => ({ ok: false as const, message: String(err) }));
  if (!sent.ok) {
    await env.DB.prepare('DELETE FROM platform_alerts WHERE key = ?1').bind(key).run();
    throw new Error(`storage alert not sent: ${'message' in sent ? sent.message : 'refused'}`);
  }
  return { ...result, alerted: true };
}
