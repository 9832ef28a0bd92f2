/**
 * The soak's view of the retention purge (docs/design.md#retention-and-archives): the handle's purged archives, read
 * through the API as a user downloads them (SHA-256 against the listed one, gunzip, one JSON object per line), and
 * the SQL that puts their rows back into the soak's own copy of D1 after the Worker stopped, so that every other
 * reconciliation counts archived rows as present.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

/** One archive line: a notification with its deliveries, each with its attempts (columns in camelCase). */
interface Line {
  notification: Record<string, unknown>;
  deliveries: Array<Record<string, unknown> & { attempts: Array<Record<string, unknown>> }>;
}

/** What the purged archives hold, and what is wrong with them (each list empty when all holds). */
export interface ArchivedRows {
  archives: number;
  lines: Line[];
  /** Archives whose object differs from the listed size or SHA-256, or whose lines differ from its counts. */
  unverified: string[];
  /** Row ids found in more than one archive (or twice in one). */
  repeated: string[];
  /** Deliveries archived while pending, queued or retrying, or notifications with an open count. */
  open: string[];
}

const OPEN = new Set(['pending', 'queued', 'retrying']);

/** Every purged archive of the handle through `GET …/archives` and `GET …/archives/{id}`. */
export async function readArchives(baseUrl: string, handle: string, token: string): Promise<ArchivedRows> {
  const out: ArchivedRows = { archives: 0, lines: [], unverified: [], repeated: [], open: [] };
  const seen = new Set<string>();
  const once = (id: string) => {
    if (seen.has(id)) out.repeated.push(id);
    seen.add(id);
  };
  const get = (p: string) =>
    fetch(`${baseUrl}/v2/handles/${handle}/archives${p}`, { headers: { authorization: `Bearer ${token}` } });
  let cursor: string | null = null;
  do {
    const res = await get(`?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (res.status !== 200) throw new Error(`listing the archives answered ${res.status}: ${await res.text()}`);
    const page = (await res.json()) as { data: Array<Record<string, any>>; nextCursor: string | null };
    for (const a of page.data.filter((x) => x.status === 'purged')) {
      out.archives++;
      const obj = await get(`/${a.id}`);
      const bytes = Buffer.from(await obj.arrayBuffer());
      const sha = createHash('sha256').update(bytes).digest('hex');
      if (obj.status !== 200 || bytes.length !== a.bytes || sha !== a.sha256) {
        out.unverified.push(a.id);
        continue;
      }
      const text = gunzipSync(bytes).toString('utf8');
      const lines = text.endsWith('\n')
        ? text
            .slice(0, -1)
            .split('\n')
            .map((l) => JSON.parse(l) as Line)
        : [];
      const deliveries = lines.reduce((n, l) => n + l.deliveries.length, 0);
      const attempts = lines.reduce((n, l) => n + l.deliveries.reduce((m, d) => m + d.attempts.length, 0), 0);
      if (lines.length !== a.notifications || deliveries !== a.deliveries || attempts !== a.attempts) {
        out.unverified.push(a.id);
      }
      for (const l of lines) {
        once(l.notification.id as string);
        if ((l.notification.openCount as number) > 0) out.open.push(l.notification.id as string);
        for (const d of l.deliveries) {
          once(d.id as string);
          if (OPEN.has(d.status as string)) out.open.push(d.id as string);
          for (const at of d.attempts) once(at.id as string);
        }
      }
      out.lines.push(...lines);
    }
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

/** The ids of every archived row (notifications, deliveries, attempts). */
export function archivedIds(rows: ArchivedRows): Set<string> {
  const ids = new Set<string>();
  for (const l of rows.lines) {
    ids.add(l.notification.id as string);
    for (const d of l.deliveries) {
      ids.add(d.id as string);
      for (const a of d.attempts) ids.add(a.id as string);
    }
  }
  return ids;
}

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function literal(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? '1' : '0';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return `'${s.replaceAll("'", "''")}'`;
}

function insert(table: string, row: Record<string, unknown>): string {
  const cols = Object.keys(row);
  return `INSERT INTO ${table} (${cols.map(snake).join(', ')}) VALUES (${cols.map((c) => literal(row[c])).join(', ')});`;
}

/**
 * The statements that put the archived rows back (a plain INSERT: an archived row still in D1 fails them). The
 * notification's `recipients` summary is not archived (a projection of the deliveries) and takes its default.
 */
export function restoreSql(rows: ArchivedRows): string {
  const out: string[] = [];
  for (const l of rows.lines) {
    out.push(insert('notifications', l.notification));
    for (const { attempts, ...d } of l.deliveries) {
      out.push(insert('deliveries', d));
      for (const a of attempts) out.push(insert('delivery_attempts', a));
    }
  }
  return out.join('\n');
}
