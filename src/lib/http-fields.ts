/**
 * HTTP field values a subscription may set (docs/design.md#webhook-request): what RFC 9110 §5.5 allows in a
 * field-value, less obs-text — visible ASCII, spaces and horizontal tabs. Anything else (control characters, DEL,
 * any non-ASCII character) is refused by `fetch` at send time, so accepting it would break every delivery. Pure.
 */

const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

/** Why `value` cannot be sent as an HTTP header value, or null when it can. */
export function headerValueProblem(value: string): string | null {
  if (FIELD_VALUE.test(value)) return null;
  const at = [...value].findIndex((ch) => !FIELD_VALUE.test(ch));
  const ch = [...value][at]!;
  const code = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  return (
    `holds ${code} at character ${at + 1}: header values may only hold visible ASCII characters, spaces and ` +
    'tabs (RFC 9110); encode anything else, e.g. percent-encoded or base64.'
  );
}

/**
 * Credential-like header names: their values are never shown in full, and only to callers who may change them.
 */
const CREDENTIAL_NAME = /authorization|token|secret|key|cookie|password|signature|credential/i;
/** An auth scheme in front of the credential (`Bearer …`, `Basic …`): not part of the secret's length. */
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*\s+(\S.*)$/s;
/** A credential (less its scheme) at least this long may show its last 4 characters: a quarter of it at most. */
const SUFFIX_MIN_LENGTH = 16;
const MASK = '••••';

/**
 * How a custom header value is shown: in full only to a caller who may change the subscription (`canWrite`) and only
 * when its name is not credential-like; a credential shows its last 4 characters only when it is long (a short one
 * would give itself away), nothing more; anyone else sees only that a value is set.
 */
export function shownHeaderValue(name: string, value: string, canWrite: boolean): string {
  if (!canWrite) return MASK;
  if (!CREDENTIAL_NAME.test(name)) return value;
  const secret = SCHEME.exec(value)?.[1] ?? value;
  return `${MASK}${secret.length >= SUFFIX_MIN_LENGTH ? secret.slice(-4) : ''}`;
}
