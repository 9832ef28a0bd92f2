/**
 * One webhook request (docs/design.md#webhook-request): Standard Webhooks headers and signature, the subscription's
 * custom headers, `redirect: 'manual'` (a redirect is an answer, never followed), a timeout, and at most 4 KB of the
 * response kept. The URL rules are checked again before every send, and the host is resolved over DNS over HTTPS
 * (delivery/dns-check.ts), so a URL that became unacceptable, or a name now pointing at a private address, is
 * `blocked_destination`.
 */

import { readCappedText } from '../../lib/response-body.ts';
import { checkWebhookUrl } from '../../lib/url-rules.ts';
import type { AttemptObservation } from '../classify.ts';
import { checkResolvedAddresses, needsLookup } from '../dns-check.ts';
import { parseRetryAfter } from '../retry-policy.ts';
import { signatureHeader } from '../signing.ts';
import type { ChannelResult } from './result.ts';

export const RESPONSE_SNIPPET_BYTES = 4096;
export const USER_AGENT = 'gharart-notify/2 (+https://notify.gharart.com/docs)';

export interface WebhookRequest {
  /** The delivery id: `webhook-id`, stable across retries. */
  msgId: string;
  url: string;
  body: string;
  /** Current secret first; a rotated-out secret second while its grace period lasts. */
  secrets: string[];
  headers: Record<string, string>;
  timeoutMs: number;
  allowInsecure: boolean;
  /** DNS-over-HTTPS endpoint for the send-time address check (DNS_OVER_HTTPS_URL); null turns the check off. */
  dohUrl: string | null;
  /**
   * Awaited right before the request is made, when everything else is ready (a paced send's gate,
   * docs/design.md#pacing); if it throws, no request is made and the error reaches the caller.
   */
  beforeSend?: () => Promise<void>;
}

function observeError(err: unknown): AttemptObservation {
  const name = err instanceof Error ? err.name : '';
  const message = err instanceof Error ? err.message : String(err);
  if (name === 'TimeoutError' || name === 'AbortError') return { kind: 'timeout' };
  if (/tls|ssl|certificate|handshake/i.test(message)) return { kind: 'tls', message };
  return { kind: 'network', message };
}

/** Sends one signed webhook request and reports what happened, without throwing for delivery failures. */
export async function sendWebhook(req: WebhookRequest): Promise<ChannelResult> {
  const requestBytes = new TextEncoder().encode(req.body).length;
  const notSent = (observation: AttemptObservation & { message: string }, durationMs: number): ChannelResult => ({
    observation,
    httpStatus: null,
    responseSnippet: null,
    durationMs,
    requestBytes,
    errorMessage: observation.message,
  });
  const check = checkWebhookUrl(req.url, { allowInsecure: req.allowInsecure });
  if (!check.ok) return notSent({ kind: 'blocked', message: check.message }, 0);
  if (req.dohUrl && needsLookup(check.url.hostname)) {
    const lookupStarted = Date.now();
    const dns = await checkResolvedAddresses(check.url.hostname, {
      dohUrl: req.dohUrl,
      timeoutMs: Math.min(req.timeoutMs, 5000),
    });
    if (!dns.ok) {
      // A private answer is a verdict (never retried); a failed lookup says nothing about the target, so retry.
      const kind = dns.reason === 'private_address' ? 'blocked' : 'network';
      return notSent({ kind, message: dns.message }, Date.now() - lookupStarted);
    }
  }
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = new Headers(req.headers);
  headers.set('content-type', 'application/json');
  headers.set('user-agent', USER_AGENT);
  headers.set('webhook-id', req.msgId);
  headers.set('webhook-timestamp', String(timestamp));
  headers.set('webhook-signature', await signatureHeader(req.secrets, req.msgId, timestamp, req.body));
  await req.beforeSend?.();
  const started = Date.now();
  try {
    const res = await fetch(check.url.toString(), {
      method: 'POST',
      headers,
      body: req.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(req.timeoutMs),
    });
    const responseSnippet = await readCappedText(res, RESPONSE_SNIPPET_BYTES);
    return {
      observation: {
        kind: 'response',
        status: res.status,
        retryAfterSeconds: parseRetryAfter(res.headers.get('retry-after')),
      },
      httpStatus: res.status,
      responseSnippet,
      durationMs: Date.now() - started,
      requestBytes,
      errorMessage: null,
    };
  } catch (err) {
    const observation = observeError(err);
    return {
      observation,
      httpStatus: null,
      responseSnippet: null,
      durationMs: Date.now() - started,
      requestBytes,
      errorMessage:
        observation.kind === 'timeout'
          ? `No answer within ${req.timeoutMs} ms.`
          : String(err instanceof Error ? err.message : err).slice(0, 500),
    };
  }
}
