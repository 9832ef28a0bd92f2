/**
 * Joining sentences into one: the diagnoses and next steps (src/delivery/diagnosis.ts, email-diagnosis.ts, the health
 * route) quote messages that are whole sentences of their own ("The webhook channel is disabled…", a status reason
 * ending in "."). Embedded mid-sentence they must lose their capital and their full stop, or the result reads
 * "but The webhook…" and "again.; no…".
 */

/**
 * A sentence made into a clause to embed: no final full stop, and a lower-case first letter unless the first word is
 * an acronym or an identifier (SNS, HTTP, dlv_…, a URL).
 */
export function asClause(text: string): string {
  const trimmed = text.trim().replace(/[.]+$/, '');
  const firstWord = /^\S+/.exec(trimmed)?.[0] ?? '';
  const keepsCase = firstWord.length > 1 && (firstWord === firstWord.toUpperCase() || /[_/:@0-9]/.test(firstWord));
  return keepsCase ? trimmed : trimmed.charAt(0).toLowerCase() + trimmed.slice(1);
}

/** Ends `text` with exactly one full stop (keeps a `?` or `!`). */
export function asSentence(text: string): string {
  const trimmed = text.trim().replace(/[.;,:\s]+$/, '');
  return /[?!]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}
