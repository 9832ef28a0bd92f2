/**
 * Outcome classes (docs/design.md#outcome-classes): every attempt is recorded with one, and the class decides what
 * happens next — success, retry on the schedule (or after `Retry-After`), or a terminal failure. Pure.
 */
export type ErrorClass =
  | 'timeout'
  | 'network'
  | 'tls'
  | 'http_3xx'
  | 'http_4xx'
  | 'http_5xx'
  | 'blocked_destination'
  | 'payload_too_large'
  | 'provider_permanent'
  | 'provider_transient';

/** What an attempt observed, before classification. */
export type AttemptObservation =
  | { kind: 'response'; status: number; retryAfterSeconds: number | null }
  /** An email provider took the message. */
  | { kind: 'accepted' }
  | { kind: 'timeout' }
  | { kind: 'network'; message: string }
  | { kind: 'tls'; message: string }
  | { kind: 'blocked'; message: string }
  | { kind: 'too_large' }
  | { kind: 'provider'; permanent: boolean; message: string };

export type Classification =
  | { outcome: 'succeeded' }
  | {
      outcome: 'failed';
      errorClass: ErrorClass;
      /** false: no further attempt can succeed (410, blocked destination, permanent provider error). */
      retryable: boolean;
      /** Honour this delay instead of the schedule's (429/503 with Retry-After). */
      retryAfterSeconds: number | null;
      /** 410 Gone: the receiver asks us to stop; the subscription is disabled at once. */
      disableSubscription: boolean;
    };

/** Classifies one attempt. */
export function classify(o: AttemptObservation): Classification {
  const fail = (
    errorClass: ErrorClass,
    retryable = true,
    retryAfterSeconds: number | null = null,
    disableSubscription = false,
  ) => ({ outcome: 'failed', errorClass, retryable, retryAfterSeconds, disableSubscription }) as const;
  switch (o.kind) {
    case 'response': {
      const s = o.status;
      if (s >= 200 && s < 300) return { outcome: 'succeeded' };
      if (s === 410) return fail('http_4xx', false, null, true);
      if (s === 413) return fail('payload_too_large', false);
      if (s === 429 || s === 503) return fail(s === 429 ? 'http_4xx' : 'http_5xx', true, o.retryAfterSeconds);
      if (s >= 300 && s < 400) return fail('http_3xx');
      if (s >= 400 && s < 500) return fail('http_4xx');
      return fail('http_5xx');
    }
    case 'accepted':
      return { outcome: 'succeeded' };
    case 'timeout':
      return fail('timeout');
    case 'network':
      return fail('network');
    case 'tls':
      return fail('tls');
    case 'blocked':
      return fail('blocked_destination', false);
    case 'too_large':
      return fail('payload_too_large', false);
    case 'provider':
      return fail(o.permanent ? 'provider_permanent' : 'provider_transient', !o.permanent);
  }
}
