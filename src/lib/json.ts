/** JSON columns: small documents stored as text, read whole. */

/** Parses a JSON column; null stays null. A corrupt value is a bug, so it throws rather than guessing. */
export function fromJsonColumn<T>(text: string | null | undefined): T | null {
  return text == null ? null : (JSON.parse(text) as T);
}

/** Serialises for a JSON column; null/undefined become SQL NULL. */
export function toJsonColumn(value: unknown): string | null {
  return value == null ? null : JSON.stringify(value);
}
