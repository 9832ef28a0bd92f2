/**
 * The soak's result: latency percentiles and status counts per request kind, deliveries by final status, and the
 * reconciliation checks, as one JSON document and as the markdown tables printed at the end of a run.
 */
import type { Sample } from './client.ts';

/** Nearest-rank percentile of sorted values (0 for none). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export interface KindStats {
  kind: string;
  requests: number;
  byStatus: Record<string, number>;
  unexpected: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface Check {
  name: string;
  expected: string | number;
  actual: string | number;
  ok: boolean;
}

/** What one handle's reconciliation counted, or one shard's (its handles summed): the per-handle and per-shard rows. */
export interface LedgerRow {
  /** The handle, or `SHARD_<n>` for a shard's row. */
  name: string;
  /** The shard (index) the handle was on when reconciled; a shard's own index for a shard's row. */
  shard: number;
  /** Handles of a shard's row (1 for a handle's). */
  handles: number;
  /** Events accepted (202, sourceEventIds) and notifications stored (D1 and archives). */
  accepted: number;
  stored: number;
  /** Notifications the purge archived during the run. */
  archived: number;
  /** Event deliveries created, then terminal; succeeded and dead among them. */
  deliveries: number;
  terminal: number;
  succeeded: number;
  dead: number;
  attempts: number;
  lost: number;
  /** Acceptance → first attempt of each delivery. */
  firstAttemptP50Ms: number;
  firstAttemptP99Ms: number;
  /** Reconciliation checks that failed for this handle (for a shard, over its handles). */
  failedChecks: number;
}

export interface SoakResult {
  startedAt: string;
  durationSeconds: number;
  phases: Record<string, number>;
  config: Record<string, unknown>;
  requests: KindStats[];
  /** Every error answer (status ≥ 400, or 0 = no answer), by status, split expected / unexpected. */
  errorsByStatus: Array<{ status: number; expected: number; unexpected: number }>;
  /** Final delivery status → count, per channel and receiver behaviour. */
  deliveries: Array<{ group: string; counts: Record<string, number> }>;
  /**
   * From the moment an event was accepted: to the first attempt of each delivery, and to its success; and how long
   * one webhook request took (as the Worker measured it).
   */
  deliveryLatency: Record<
    'firstAttempt' | 'succeeded' | 'webhookAttempt',
    { p50Ms: number; p99Ms: number; maxMs: number }
  >;
  /** Delivery attempts by channel, outcome, error class and HTTP status (`webhook failed http_5xx 500`). */
  attempts: { total: number; byClass: Record<string, number> };
  lost: number;
  unexpected5xx: number;
  /** The ledger per shard and per handle (each handle reconciled on the shard it lives on). */
  shards: LedgerRow[];
  handles: LedgerRow[];
  checks: Check[];
  /** Observations that are not pass/fail. */
  notes: string[];
  unexpectedSamples: unknown[];
  passed: boolean;
}

/** Per kind, in the order the kinds first appear. */
export function summarize(samples: readonly Sample[]): {
  kinds: KindStats[];
  errorsByStatus: SoakResult['errorsByStatus'];
} {
  const byKind = new Map<string, Sample[]>();
  for (const s of samples) {
    let list = byKind.get(s.kind);
    if (!list) {
      list = [];
      byKind.set(s.kind, list);
    }
    list.push(s);
  }
  const kinds = [...byKind].map(([kind, list]) => {
    const ms = list.map((s) => s.ms).sort((a, b) => a - b);
    const byStatus: Record<string, number> = {};
    for (const s of list) byStatus[String(s.status)] = (byStatus[String(s.status)] ?? 0) + 1;
    return {
      kind,
      requests: list.length,
      byStatus,
      unexpected: list.filter((s) => !s.expected).length,
      p50Ms: round(percentile(ms, 50)),
      p99Ms: round(percentile(ms, 99)),
      maxMs: round(ms.at(-1) ?? 0),
    };
  });
  const errors = new Map<number, { status: number; expected: number; unexpected: number }>();
  for (const s of samples) {
    if (s.status !== 0 && s.status < 400) continue;
    let e = errors.get(s.status);
    if (!e) {
      e = { status: s.status, expected: 0, unexpected: 0 };
      errors.set(s.status, e);
    }
    if (s.expected) e.expected++;
    else e.unexpected++;
  }
  return { kinds, errorsByStatus: [...errors.values()].sort((a, b) => a.status - b.status) };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function table(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

/**
 * One check per name over several handles: ok when every handle's is; numbers summed; a value every handle shares
 * once; otherwise each handle's value.
 */
export function mergeChecks(perHandle: ReadonlyArray<{ handle: string; checks: readonly Check[] }>): Check[] {
  const byName = new Map<string, Array<{ handle: string; check: Check }>>();
  for (const { handle, checks } of perHandle) {
    for (const check of checks) {
      const list = byName.get(check.name) ?? [];
      list.push({ handle, check });
      byName.set(check.name, list);
    }
  }
  const merge = (values: Array<{ handle: string; value: string | number }>): string | number => {
    if (values.every((v) => typeof v.value === 'number')) return values.reduce((n, v) => n + (v.value as number), 0);
    const distinct = new Set(values.map((v) => String(v.value)));
    return distinct.size === 1 ? values[0]!.value : values.map((v) => `${v.handle}: ${v.value}`).join('; ');
  };
  return [...byName].map(([name, list]) => ({
    name: list.length > 1 ? `${name} (${list.length} handles)` : name,
    expected: merge(list.map((l) => ({ handle: l.handle, value: l.check.expected }))),
    actual: merge(list.map((l) => ({ handle: l.handle, value: l.check.actual }))),
    ok: list.every((l) => l.check.ok),
  }));
}

function ledgerTable(rows: readonly LedgerRow[], first: string): string {
  return table(
    [
      first === 'shard' ? 'database' : first,
      'shard',
      'accepted',
      'stored',
      'archived',
      'deliveries',
      'terminal',
      'succeeded',
      'dead',
      'attempts',
      'lost',
      'first attempt p50 / p99',
      'failed checks',
    ],
    rows.map((r) => [
      r.handles > 1 || first === 'shard' ? `${r.name} (${r.handles} handles)` : r.name,
      r.shard,
      r.accepted,
      r.stored,
      r.archived,
      r.deliveries,
      r.terminal,
      r.succeeded,
      r.dead,
      r.attempts,
      `**${r.lost}**`,
      `${seconds(r.firstAttemptP50Ms)} / ${seconds(r.firstAttemptP99Ms)}`,
      r.failedChecks,
    ]),
  );
}

/** The markdown the run prints (and writes next to the JSON). */
export function renderMarkdown(r: SoakResult): string {
  const statuses = [...new Set(r.requests.flatMap((k) => Object.keys(k.byStatus)))].sort(
    (a, b) => Number(a) - Number(b),
  );
  const total = (pick: (k: KindStats) => number) => r.requests.reduce((n, k) => n + pick(k), 0);
  const requestRows = r.requests.map((k) => [
    k.kind,
    k.requests,
    ...statuses.map((s) => k.byStatus[s] ?? 0),
    k.unexpected,
    k.p50Ms,
    k.p99Ms,
    k.maxMs,
  ]);
  requestRows.push([
    '**total**',
    total((k) => k.requests),
    ...statuses.map((s) => total((k) => k.byStatus[s] ?? 0)),
    total((k) => k.unexpected),
    '',
    '',
    '',
  ]);
  const deliveryStatuses = [...new Set(r.deliveries.flatMap((d) => Object.keys(d.counts)))];
  const phases = Object.entries(r.phases)
    .map(([name, s]) => `${name} ${s.toFixed(1)} s`)
    .join(' · ');
  return [
    `### Soak ${r.passed ? 'PASSED' : 'FAILED'} — ${r.startedAt}, ${r.durationSeconds.toFixed(1)} s`,
    '',
    Object.entries(r.config)
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join(' · '),
    '',
    `Phases: ${phases}`,
    '',
    '**Requests** (status columns are HTTP statuses; 0 = no answer; latency in ms)',
    '',
    table(['kind', 'requests', ...statuses, 'unexpected', 'p50', 'p99', 'max'], requestRows),
    '',
    '**Errors by status**',
    '',
    r.errorsByStatus.length
      ? table(
          ['status', 'expected', 'unexpected'],
          r.errorsByStatus.map((e) => [e.status, e.expected, e.unexpected]),
        )
      : '(none)',
    '',
    `**Deliveries by final status** (${r.attempts.total} attempts: ${Object.entries(r.attempts.byClass)
      .map(([label, n]) => `${n} ${label}`)
      .join(', ')})`,
    '',
    table(
      ['recipients', ...deliveryStatuses, 'total'],
      r.deliveries.map((d) => [
        d.group,
        ...deliveryStatuses.map((s) => d.counts[s] ?? 0),
        Object.values(d.counts).reduce((a, b) => a + b, 0),
      ]),
    ),
    '',
    `Delivery latency from acceptance: first attempt p50 ${seconds(r.deliveryLatency.firstAttempt.p50Ms)}, p99 ${seconds(r.deliveryLatency.firstAttempt.p99Ms)}; ` +
      `succeeded p50 ${seconds(r.deliveryLatency.succeeded.p50Ms)}, p99 ${seconds(r.deliveryLatency.succeeded.p99Ms)}; ` +
      `one webhook request p50 ${r.deliveryLatency.webhookAttempt.p50Ms} ms, p99 ${r.deliveryLatency.webhookAttempt.p99Ms} ms`,
    '',
    "**Per shard** (each handle reconciled on the shard the directory names, from that shard's own D1 file)",
    '',
    ledgerTable(r.shards, 'shard'),
    '',
    '**Per handle**',
    '',
    ledgerTable(r.handles, 'handle'),
    '',
    '**Reconciliation** (each check run per handle; numbers summed over the handles)',
    '',
    table(
      ['check', 'expected', 'actual', 'ok'],
      r.checks.map((c) => [c.name, c.expected, c.actual, c.ok ? '✔' : '✖']),
    ),
    '',
    ...r.notes.map((n) => `- ${n}`),
    ...(r.notes.length ? [''] : []),
    `**lost = ${r.lost}**, unexpected 5xx = ${r.unexpected5xx}`,
  ].join('\n');
}
