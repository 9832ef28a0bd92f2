/**
 * The doctor's overall status and storage (docs/design.md#storage-budget): a handle whose purge is more than a day
 * behind its retention, or a database past 80 % of its limit, is `degraded`; a purge that is merely due is not.
 */
import { describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.ts';
import { callJson, callWithVars } from '../support/helpers.ts';
import { setupHandle, type TestHandle } from '../support/pipeline-helpers.ts';
import { insertNotifications } from '../support/seed.ts';

const DAY = 86_400_000;

async function healthyHandle(): Promise<TestHandle> {
  const h = await setupHandle();
  const set = await callJson('PUT', `/v2/handles/${h.handle}/notifications/owner-default-email`, {
    token: h.token,
    body: { email: 'owner@example.com' },
  });
  expect(set.status).toBe(200);
  return h;
}

async function doctor(h: TestHandle, vars: Record<string, string> = {}) {
  const res = await callWithVars(vars as Partial<Env>, 'GET', `/v2/handles/${h.handle}/health`, { token: h.token });
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string; storage: { oldestNotificationAt: string | null } };
}

async function notificationAged(h: TestHandle, ageMs: number): Promise<void> {
  const at = Date.now() - ageMs;
  await insertNotifications(h.handle, [
    {
      id: newId('ntf', at),
      type: 'order.paid',
      severity: 'info',
      status: 'delivered',
      createdAt: new Date(at).toISOString(),
      data: {},
    },
  ]);
}

describe('the doctor counts storage in its status', () => {
  it('degraded when the purge is over a day behind the retention or the database is past 80 %; healthy otherwise', async () => {
    const h = await healthyHandle();
    expect((await doctor(h)).status).toBe('healthy');

    // Past the 30-day retention by half a day: the purge is due, not behind.
    await notificationAged(h, 30.5 * DAY);
    const due = await doctor(h);
    expect(due.storage.oldestNotificationAt).not.toBeNull();
    expect(due.status).toBe('healthy');

    // The database past 80 % of its limit.
    expect((await doctor(h, { D1_SIZE_LIMIT_BYTES: '1000' })).status).toBe('degraded');

    // A notification past the retention by more than a day: the purge has waited or failed that long.
    const behind = await healthyHandle();
    await notificationAged(behind, 32 * DAY);
    expect((await doctor(behind)).status).toBe('degraded');
  });
});
