/**
 * Reading the dashboard's form posts: the fields as strings, the textareas that hold JSON or header lines, the
 * comma-separated type lists, the datetime-local inputs (UTC), the per-form idempotency key and the `:id` of a path.
 * A field that cannot become what the API expects is refused here with the API's own validation problem shape
 * (lib/problem.ts), naming the API field it was for.
 */
import type { Context } from 'hono';
import type { AppEnv } from '../env.ts';
import { problemBody, problems } from '../lib/problem.ts';
import type { Problem } from './api.ts';

type C = Context<AppEnv>;

/** A posted form: its string fields (files are ignored). */
export type Form = Record<string, string>;

/** The string fields of the posted form. */
export async function formOf(c: C): Promise<Form> {
  const body = await c.req.parseBody();
  const out: Form = {};
  for (const [k, v] of Object.entries(body)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A 400 for a form field, worded like the API's and pointing at the API field (`body.filterPolicy`). */
const fieldProblem = (c: C, detail: string, path: string): Problem =>
  problemBody(problems.validation([{ path, message: detail }], detail), c.get('requestId'));

/** The parsed value of a JSON textarea (empty → null), or a problem naming the field. */
export function jsonField(c: C, form: Form, name: string, apiPath: string): { value: unknown } | { problem: Problem } {
  const raw = (form[name] ?? '').trim();
  if (!raw) return { value: null };
  try {
    return { value: JSON.parse(raw) };
  } catch {
    return { problem: fieldProblem(c, `${name} is not valid JSON.`, apiPath) };
  }
}

/** "a, b c" → ["a","b","c"]; empty → null. */
export function typesField(value: string | undefined): string[] | null {
  const parts = (value ?? '').split(/[\s,]+/).filter(Boolean);
  return parts.length ? parts : null;
}

/** "Name: value" lines → a header record, or a problem naming the line. */
export function headersField(
  c: C,
  value: string | undefined,
): { value: Record<string, string> } | { problem: Problem } {
  const out: Record<string, string> = {};
  for (const line of (value ?? '').split(/\r?\n/)) {
    if (!line.trim()) continue;
    const i = line.indexOf(':');
    if (i <= 0)
      return { problem: fieldProblem(c, `Header line "${line.slice(0, 60)}" is not "Name: value".`, 'body.headers') };
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return { value: out };
}

/** Writes carry the form's idempotency key (a replay within 24 h answers with the stored response). */
export function idemHeaders(form: Form, suffix = ''): Record<string, string> {
  const key = form._idem;
  return key && /^[A-Za-z0-9_-]{16,64}$/.test(key) ? { 'idempotency-key': `dash-${key}${suffix}` } : {};
}

/** `YYYY-MM-DDTHH:MM:SS` (a datetime-local value, read as UTC) → ISO 8601; anything else unchanged. */
export function fromLocalInput(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?$/.exec(value.trim());
  return m ? `${m[1]}${m[2] ?? ':00'}Z` : value.trim();
}

/** ISO 8601 → a datetime-local value in UTC. */
export function toLocalInput(iso: string): string {
  return new Date(iso).toISOString().slice(0, 19);
}

const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The `:id` of the path when it looks like an id (the API answers anything else with its 404). */
export function pathId(c: C): string {
  const id = c.req.param('id') ?? '';
  return SAFE_ID.test(id) ? id : 'invalid';
}
