/**
 * The archive object's format (docs/design.md#retention-and-archives): gzip of NDJSON, one line per notification with
 * its deliveries, each with its attempts, as the rows were in D1 (column names in camelCase). `recipients` is left
 * out: it is the notification's projection of its deliveries, which are in the line in full.
 */

/** One D1 row as `SELECT *` reads it. */
export type Row = Record<string, unknown>;

/** A line of the archive. */
export interface ArchiveLine {
  notification: Row;
  deliveries: Array<Row & { attempts: Row[] }>;
}

const camel = (key: string) => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function camelRow(row: Row, drop: readonly string[] = []): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) if (!drop.includes(k)) out[camel(k)] = v;
  return out;
}

/** Groups rows into lines, in notification id order; deliveries and attempts in id order under their parent. */
export function archiveLines(notifications: Row[], deliveries: Row[], attempts: Row[]): ArchiveLine[] {
  const byId = (a: Row, b: Row) => ((a.id as string) < (b.id as string) ? -1 : 1);
  const attemptsOf = new Map<string, Row[]>();
  for (const a of [...attempts].sort(byId)) {
    const list = attemptsOf.get(a.delivery_id as string) ?? [];
    list.push(camelRow(a));
    attemptsOf.set(a.delivery_id as string, list);
  }
  const deliveriesOf = new Map<string, ArchiveLine['deliveries']>();
  for (const d of [...deliveries].sort(byId)) {
    const list = deliveriesOf.get(d.notification_id as string) ?? [];
    // `id_from_notification` only says which index finds the row (docs/design.md#delivery-ids); its id shows it.
    list.push({ ...camelRow(d, ['id_from_notification']), attempts: attemptsOf.get(d.id as string) ?? [] });
    deliveriesOf.set(d.notification_id as string, list);
  }
  return [...notifications].sort(byId).map((n) => {
    const notification = camelRow(n, ['recipients']);
    notification.data = JSON.parse(n.data as string);
    return { notification, deliveries: deliveriesOf.get(n.id as string) ?? [] };
  });
}

/** The gzip bytes of the lines as NDJSON (each line ends with `\n`). */
export async function gzipNdjson(lines: readonly unknown[]): Promise<Uint8Array> {
  const text = lines.map((l) => `${JSON.stringify(l)}\n`).join('');
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Hex SHA-256 of the bytes. */
export async function sha256Hex(bytes: Uint8Array | ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}
