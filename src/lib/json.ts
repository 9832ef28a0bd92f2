/** JSON columns: small documents stored as text, read whole. */

/** Parses a JSON column; null stays null. A corrupt value is a bug, so it throws rather than guessing. */
export function fromJsonColumn<T>(text: string | null | undefined): T | null {
  return text == null ? null : (JSON.parse(text) as T);
}

/** Serialises for a JSON column; null/undefined become SQL NULL. */
export function toJsonColumn(value: unknown): string | null {
  return value == null ? null : JSON.stringify(value);
}

/** A JSON object (not an array, not null, not a class instance): what `JSON.parse` gives for `{…}`. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
