/**
 * Opaque keyset cursors. A cursor carries the last id of the previous page; the next page is `id < cursor` on the
 * same index, so every page reads about `limit` rows however deep it is (no OFFSET).
 */
import { problems } from './problem.ts';

const VERSION = 'v1';

export function encodeCursor(lastId: string): string {
  return btoa(`${VERSION}:${lastId}`).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The id a cursor points after, or a 400 naming the `cursor` field when it was not made by this service. */
export function decodeCursor(cursor: string | undefined, idPattern: RegExp): string | null {
  if (cursor === undefined) return null;
  let decoded: string;
  try {
    decoded = atob(cursor.replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    decoded = '';
  }
  const [version, id] = decoded.split(/:(.*)/s);
  if (version !== VERSION || !id || !idPattern.test(id)) {
    throw problems.validation([{ path: 'query.cursor', message: 'Not a cursor returned by this API.' }]);
  }
  return id;
}

/**
 * Splits `limit + 1` fetched rows into the page and the next cursor (present only when there is more).
 */
export function toPage<T extends { id: string }>(rows: T[], limit: number): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const nextCursor = rows.length > limit ? encodeCursor(items[items.length - 1]!.id) : null;
  return { items, nextCursor };
}
