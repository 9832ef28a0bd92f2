/**
 * Loads everything matching needs for one handle — settings and every subscription — in one D1 round trip
 * (a batch of three reads). A handle has at most 50 webhooks and 201 email subscriptions, so this is bounded.
 */
import { eq, getTableColumns, sql } from 'drizzle-orm';
import { type Db, getDb } from '../db/client.ts';
import { type Compiled, compiled } from '../db/prepared.ts';
import { emailSubscriptions, notificationSettings, webhookSubscriptions } from '../db/schema.ts';
import type { FilterPolicy } from '../lib/filter-policy.ts';
import { fromJsonColumn } from '../lib/json.ts';
import type { EmailCandidate, MatchSettings, WebhookCandidate } from './match.ts';

export type SettingsRow = typeof notificationSettings.$inferSelect;

export interface MatchContext {
  settingsRow: SettingsRow;
  settings: MatchSettings;
  webhooks: WebhookCandidate[];
  emails: EmailCandidate[];
}

export function toMatchSettings(
  row: Pick<SettingsRow, 'emailEnabled' | 'webhookEnabled' | 'eventFilter' | 'ownerFallback'>,
): MatchSettings {
  return {
    emailEnabled: row.emailEnabled,
    webhookEnabled: row.webhookEnabled,
    eventFilter: fromJsonColumn<FilterPolicy>(row.eventFilter),
    ownerFallback: row.ownerFallback,
  };
}

/** The three reads of a handle's match context, for a `db.batch` of their own or of a caller's (see ingest.ts). */
export function matchContextQueries(db: Db, handle: string) {
  return [
    db.select().from(notificationSettings).where(eq(notificationSettings.handle, handle)),
    db.select().from(webhookSubscriptions).where(eq(webhookSubscriptions.handle, handle)),
    db.select().from(emailSubscriptions).where(eq(emailSubscriptions.handle, handle)),
  ] as const;
}

/** Only builds SQL (src/db/prepared.ts): never run. */
const SQL_ONLY = {} as D1Database;

/**
 * {@link matchContextQueries} built once per isolate (src/db/prepared.ts), each with its `handle` to bind: the three
 * reads of every publish, for a caller's `readBatch`.
 */
export function matchContextCompiled(handle: string) {
  const db = getDb(SQL_ONLY);
  const slot = sql.placeholder('handle') as unknown as string;
  const [settings, webhooks, emails] = [
    compiled('match.settings', getTableColumns(notificationSettings), () => matchContextQueries(db, slot)[0]),
    compiled('match.webhooks', getTableColumns(webhookSubscriptions), () => matchContextQueries(db, slot)[1]),
    compiled('match.emails', getTableColumns(emailSubscriptions), () => matchContextQueries(db, slot)[2]),
  ] as Compiled<unknown>[];
  const values = { handle };
  return [
    [settings!, values],
    [webhooks!, values],
    [emails!, values],
  ] as const;
}

type MatchContextRows = readonly [
  SettingsRow[],
  Array<typeof webhookSubscriptions.$inferSelect>,
  Array<typeof emailSubscriptions.$inferSelect>,
];

/** The rows of {@link matchContextQueries} as matching candidates; undefined when the handle has no settings row. */
export function toMatchContext([settingsRows, webhookRows, emailRows]: MatchContextRows): MatchContext | undefined {
  const settingsRow = settingsRows[0];
  if (!settingsRow) return undefined;
  return {
    settingsRow,
    settings: toMatchSettings(settingsRow),
    webhooks: webhookRows.map((w) => ({
      id: w.id,
      url: w.url,
      enabled: w.enabled,
      eventTypes: fromJsonColumn<string[]>(w.eventTypes),
      filterPolicy: fromJsonColumn<FilterPolicy>(w.filterPolicy),
    })),
    emails: emailRows.map((e) => ({
      id: e.id,
      kind: e.kind,
      email: e.emailNormalized,
      status: e.status,
      eventTypes: fromJsonColumn<string[]>(e.eventTypes),
      filterPolicy: fromJsonColumn<FilterPolicy>(e.filterPolicy),
    })),
  };
}

/** The handle's settings and subscriptions as matching candidates; undefined when the handle has no settings row. */
export async function loadMatchContext(db: Db, handle: string): Promise<MatchContext | undefined> {
  return toMatchContext(await db.batch(matchContextQueries(db, handle)));
}
