/**
 * The soak's HTTP client: a keep-alive pool of exactly `connections` sockets to the Worker, and a recorder of every
 * answer (kind, status, latency, whether an error came as RFC 9457 problem+json).
 */
import { Agent, request } from 'node:http';

/** What one request of a kind may answer without it being a finding (anything else is unexpected). */
export type ExpectedStatuses = readonly number[];

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON, or null for an empty or non-JSON body. */
  body: any;
  ms: number;
}

export interface Sample {
  kind: string;
  /** 0 = no HTTP answer (connection error or timeout). */
  status: number;
  ms: number;
  /** The answer was an error without a problem+json body carrying a requestId. */
  bareError: boolean;
  expected: boolean;
  requestId: string | undefined;
  detail: string | undefined;
}

/** Every answer, grouped by kind. */
export class Recorder {
  readonly samples: Sample[] = [];
  /** The first few unexpected answers, kept whole for the report. */
  readonly unexpected: Array<Sample & { method: string; path: string }> = [];

  add(sample: Sample, method: string, path: string): void {
    this.samples.push(sample);
    if (!sample.expected && this.unexpected.length < 20) this.unexpected.push({ ...sample, method, path });
  }
}

export interface RequestOptions {
  token: string;
  body?: unknown;
  headers?: Record<string, string>;
  expected: ExpectedStatuses;
}

export interface Client {
  request(kind: string, method: string, path: string, options: RequestOptions): Promise<Answer>;
  close(): void;
}

const REQUEST_TIMEOUT_MS = 60_000;

function isProblem(status: number, contentType: string | undefined, body: any): boolean {
  return (
    status >= 400 &&
    (contentType ?? '').startsWith('application/problem+json') &&
    body !== null &&
    typeof body === 'object' &&
    body.status === status &&
    typeof body.requestId === 'string'
  );
}

/** A client of `baseUrl` over at most `connections` keep-alive sockets; every answer goes to `recorder`. */
export function createClient(baseUrl: string, connections: number, recorder: Recorder): Client {
  const agent = new Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  const origin = new URL(baseUrl);

  function send(method: string, path: string, options: RequestOptions): Promise<Omit<Answer, 'ms'>> {
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.token}`,
      accept: 'application/json',
      ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
      ...options.headers,
    };
    return new Promise((resolve, reject) => {
      const req = request(
        { agent, host: origin.hostname, port: origin.port, method, path, headers, timeout: REQUEST_TIMEOUT_MS },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: any = null;
            try {
              body = text ? JSON.parse(text) : null;
            } catch {
              body = null;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  return {
    async request(kind, method, path, options) {
      // A write to a handle moving between shards answers 503 with Retry-After (docs/design.md#moving-a-handle): the
      // soak waits and sends it again, as a client should, and records that answer apart as an expected one.
      for (let tries = 1; ; tries++) {
        const answer = await once(kind, method, path, options);
        if (answer.status !== 503 || tries > MOVE_RETRIES || !isMoving(answer)) return answer;
        await new Promise((resolve) => setTimeout(resolve, Number(answer.headers['retry-after'] ?? 1) * 1000));
      }
    },
    close() {
      agent.destroy();
    },
  };

  async function once(kind: string, method: string, path: string, options: RequestOptions): Promise<Answer> {
    const started = performance.now();
    let answer: Omit<Answer, 'ms'>;
    try {
      answer = await send(method, path, options);
    } catch (err) {
      const ms = performance.now() - started;
      const detail = (err as Error).message;
      recorder.add(
        { kind, status: 0, ms, bareError: true, expected: false, requestId: undefined, detail },
        method,
        path,
      );
      return { status: 0, headers: {}, body: null, ms };
    }
    const ms = performance.now() - started;
    const contentType = answer.headers['content-type'] as string | undefined;
    const bareError = answer.status >= 400 && !isProblem(answer.status, contentType, answer.body);
    const moving = !bareError && isMoving(answer);
    // A 5xx is never expected, and neither is an error a client cannot hand to support (no problem body); the one
    // exception is the documented 503 of a handle's move, which the caller retries.
    const expected = moving || (answer.status < 500 && !bareError && options.expected.includes(answer.status));
    const requestId = (answer.headers['x-request-id'] as string | undefined) ?? answer.body?.requestId;
    const detail = answer.status >= 400 ? String(answer.body?.detail ?? answer.body?.title ?? '') : undefined;
    const recorded = moving ? `${kind} (503 while moving, retried)` : kind;
    recorder.add({ kind: recorded, status: answer.status, ms, bareError, expected, requestId, detail }, method, path);
    return { ...answer, ms };
  }
}

/** How often one request is sent again while its handle moves (the read-only pass lasts about a minute). */
const MOVE_RETRIES = 30;

/** The 503 of a write to a handle moving between shards: problem+json with Retry-After, naming the move. */
function isMoving(answer: Omit<Answer, 'ms'>): boolean {
  return (
    answer.status === 503 &&
    answer.headers['retry-after'] !== undefined &&
    /moving to another database/.test(String(answer.body?.detail ?? ''))
  );
}
