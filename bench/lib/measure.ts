/**
 * Measuring pieces: a closed-loop HTTP load generator (fixed concurrency, keep-alive, node:http — the same client for
 * subject and baseline), workerd's CPU time from /proc, and the small statistics the report needs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

export interface LoadSpec {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  /** A body per request (called once per request, so each can differ). */
  body?: () => string;
  concurrency: number;
  durationMs: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  /** First non-2xx answer, to explain errors. */
  firstError: string | null;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  /** workerd CPU (user + system) per completed request, in microseconds. */
  cpuUsPerReq: number;
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(values: number[]): number {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Finds the workerd process Miniflare started (a child of this Node process). */
export function findWorkerdPid(): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (comm === 'workerd' && Number(fields[1]) === process.pid) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error('bench: no workerd child process found');
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "(comm) ": state is field 3, so utime (14) and stime (15) are at indexes 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

const agents = new Map<number, Agent>();
function agentFor(concurrency: number): Agent {
  let a = agents.get(concurrency);
  if (!a) {
    a = new Agent({ keepAlive: true, maxSockets: concurrency, keepAliveMsecs: 30_000 });
    agents.set(concurrency, a);
  }
  return a;
}

/** One request; resolves with the status and body text. */
export function send(
  method: string,
  url: string,
  headers: Record<string, string> = {},
  body?: string,
  agent: Agent = agentFor(8),
): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers }, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `spec` for its duration with `concurrency` requests always outstanding; `pid` is workerd's. */
export async function runLoad(spec: LoadSpec, pid: number): Promise<LoadResult> {
  const agent = agentFor(spec.concurrency);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const deadline = t0 + spec.durationMs;
  const loop = async () => {
    while (performance.now() < deadline) {
      const start = performance.now();
      try {
        const r = await send(spec.method, spec.url, spec.headers, spec.body?.(), agent);
        if (r.status >= 200 && r.status < 300) latencies.push(performance.now() - start);
        else {
          errors++;
          firstError ??= `${r.status} ${r.text.slice(0, 300)}`;
        }
      } catch (err) {
        errors++;
        firstError ??= String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, loop));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  latencies.sort((a, b) => a - b);
  const done = latencies.length + errors;
  return {
    requests: latencies.length,
    errors,
    firstError,
    seconds,
    rps: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuUsPerReq: done ? (cpu * 1e6) / done : NaN,
  };
}
