/**
 * RFC 9457 problem details: the only place an error becomes a response.
 *
 * Code anywhere (routes, middleware, repos) throws a {@link ProblemError} built by one of the {@link problems}
 * factories; the app's error handler turns it — or anything else thrown — into `application/problem+json` with the
 * request id. Unexpected errors become a 500 whose body names only the request id: never a stack or a message.
 */

/** One entry of `errors[]` on a 400: where in the request, and what is wrong there. */
export interface FieldError {
  path: string;
  message: string;
}

/** The documented problem types. `type` URIs point at the matching section of `/docs`. */
export const PROBLEM_TYPES = {
  validation: { status: 400, title: 'Your request is not valid' },
  malformed_json: { status: 400, title: 'The request body is not valid JSON' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Not allowed' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  conflict: { status: 409, title: 'Conflict' },
  gone: { status: 410, title: 'No longer valid' },
  precondition_failed: { status: 412, title: 'Precondition failed' },
  payload_too_large: { status: 413, title: 'Request body too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  unprocessable: { status: 422, title: 'The request cannot be processed' },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'Service unavailable' },
} as const;

export type ProblemType = keyof typeof PROBLEM_TYPES;

/** A problem to be sent to the client. Throw it; the error handler renders it. */
export class ProblemError extends Error {
  readonly type: ProblemType;
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  /** Extra members of the problem object (e.g. `missingScopes`), documented per type. */
  readonly extensions: Record<string, unknown>;
  /**
   * A 5xx the service answers on purpose, for a state it put itself in (a handle moving between shards): the request
   * log writes it as a warning, so errors stay what someone should look at.
   */
  readonly planned: boolean;

  constructor(
    type: ProblemType,
    detail: string,
    options: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      extensions?: Record<string, unknown>;
      planned?: boolean;
    } = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
    this.type = type;
    this.status = PROBLEM_TYPES[type].status;
    this.title = PROBLEM_TYPES[type].title;
    this.detail = detail;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
    this.planned = options.planned ?? false;
  }
}

/** Factories for every problem the API sends, so wording and headers stay consistent. */
export const problems = {
  validation: (errors: FieldError[], detail = 'One or more fields are invalid; see errors[].') =>
    new ProblemError('validation', detail, { errors }),
  malformedJson: () => new ProblemError('malformed_json', 'The request body could not be parsed as JSON.'),
  unauthenticated: (detail: string, error: 'invalid_request' | 'invalid_token' = 'invalid_token') =>
    new ProblemError('unauthenticated', detail, {
      headers: { 'WWW-Authenticate': `Bearer realm="gharart-notify", error="${error}"` },
    }),
  missingScopes: (scopes: string[], anyOf = false) =>
    new ProblemError(
      'forbidden',
      anyOf
        ? `This token needs one of the scopes ${scopes.join(', ')}.`
        : `This token lacks the scope ${scopes.join(', ')}.`,
      {
        extensions: { missingScopes: scopes },
        headers: {
          'WWW-Authenticate': `Bearer realm="gharart-notify", error="insufficient_scope", scope="${scopes.join(' ')}"`,
        },
      },
    ),
  missingRole: (required: string[], actual: string) =>
    new ProblemError(
      'forbidden',
      `This action needs the role ${required.join(' or ')} on this handle; you are ${actual}.`,
      {
        extensions: { requiredRoles: required, role: actual },
      },
    ),
  forbidden: (detail: string) => new ProblemError('forbidden', detail),
  notFound: (detail = 'The requested resource does not exist or you do not have access to it.') =>
    new ProblemError('not_found', detail),
  methodNotAllowed: (method: string, allow: string[]) =>
    new ProblemError('method_not_allowed', `${method} is not supported here. Allowed: ${allow.join(', ')}.`, {
      headers: { Allow: allow.join(', ') },
    }),
  /** `extensions` name what the request collided with (e.g. `existingId`), so a client can act without a search. */
  conflict: (detail: string, extensions?: Record<string, unknown>) =>
    new ProblemError('conflict', detail, extensions ? { extensions } : {}),
  gone: (detail: string, extensions?: Record<string, unknown>) =>
    new ProblemError('gone', detail, extensions ? { extensions } : {}),
  preconditionFailed: (detail: string) => new ProblemError('precondition_failed', detail),
  payloadTooLarge: (limitBytes: number, detail = `The request body exceeds ${limitBytes} bytes.`) =>
    new ProblemError('payload_too_large', detail, {
      extensions: { limitBytes },
    }),
  unsupportedMediaType: (got: string | undefined) =>
    new ProblemError(
      'unsupported_media_type',
      `Request bodies must be application/json${got ? `; got ${got}` : '; no Content-Type was sent'}.`,
      { headers: { 'Accept-Post': 'application/json' } },
    ),
  unprocessable: (detail: string, extensions?: Record<string, unknown>) =>
    new ProblemError('unprocessable', detail, extensions ? { extensions } : {}),
  /**
   * `budget` names the limit that refused: which one, its size, what remains (0) and the window
   * (docs/design.md#per-route-throttles, #the-daily-write-limit), in the body as the RateLimit headers say it.
   */
  rateLimited: (
    detail: string,
    retryAfterSeconds: number,
    headers: Record<string, string> = {},
    budget: Record<string, unknown> = {},
  ) =>
    new ProblemError('rate_limited', detail, {
      headers: { 'Retry-After': String(retryAfterSeconds), ...headers },
      extensions: { retryAfterSeconds, ...budget },
    }),
  internal: () =>
    new ProblemError('internal', 'Something went wrong on our side. Quote the requestId when you contact support.'),
  unavailable: (detail: string) => new ProblemError('unavailable', detail, { headers: { 'Retry-After': '5' } }),
  /** Writes to a handle in the last pass of its move between shards (docs/design.md#moving-a-handle). */
  moving: () =>
    new ProblemError('unavailable', 'This handle is moving to another database; writes resume within a minute.', {
      headers: { 'Retry-After': '5' },
      planned: true,
    }),
};

/**
 * Whether an error is D1 failing transiently — what its error list says to retry: the connection lost, the database
 * overloaded, reset (a timeout, a code update, memory or CPU limits) or unreachable on a remote node. Worth a 503 and
 * a retry. Everything else D1 reports under `D1_ERROR` (a constraint, a syntax error, too many variables) is a bug of
 * ours and stays a 500.
 */
export function isTransientStorageError(err: unknown): boolean {
  const message =
    err instanceof Error ? `${err.message} ${err.cause instanceof Error ? err.cause.message : ''}` : String(err);
  if (/SQLITE_|constraint|syntax error|no such (table|column)|too many SQL variables/i.test(message)) return false;
  return (
    /Network connection lost|transient issue|(was|object to be) reset/i.test(message) ||
    /overloaded|exceeded (its )?(timeout|CPU|memory)/i.test(message)
  );
}

/** Renders a problem as an RFC 9457 response. `instance` names this occurrence without echoing request input. */
export function problemResponse(problem: ProblemError, requestId: string): Response {
  return new Response(JSON.stringify(problemBody(problem, requestId)), {
    status: problem.status,
    headers: { 'Content-Type': 'application/problem+json', ...problem.headers },
  });
}

/** A problem as a JSON object: the body {@link problemResponse} sends, for callers that render problems themselves. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

/** The body of {@link problemResponse} as an object, for a page that shows the problem instead of sending it. */
export function problemBody(problem: ProblemError, requestId: string): ProblemBody {
  return {
    type: `/docs#problem-${problem.type}`,
    title: problem.title,
    status: problem.status,
    detail: problem.detail,
    instance: `urn:gharart-notify:request:${requestId}`,
    requestId,
    ...problem.extensions,
    ...(problem.errors ? { errors: problem.errors } : {}),
  };
}

/**
 * An error answer that is not a problem (no JSON object with a status) told as one, so it is shown like any other:
 * its status, its status text (or "Error") and the start of its body. The app answers every error with a problem;
 * this is for a caller reading answers it cannot vouch for (the dashboard's in-process client).
 */
export function foreignProblemBody(status: number, statusText: string, body: string): ProblemBody {
  return { type: 'about:blank', title: statusText || 'Error', status, detail: body.slice(0, 500) };
}
