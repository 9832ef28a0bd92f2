/**
 * JWT verification with jose (docs/design.md#identity-access-and-limits): HS256 with a shared secret locally, or a JWKS
 * URL (RS256/ES256) in production; an algorithm allow-list; a non-empty `sub` and `exp` required; `iss`/`aud` checked
 * when configured, and required (claims and settings) with a JWKS, whose keys may sign tokens for other applications
 * too; a lifetime of at most `maxLifetimeSeconds` (JWT_MAX_LIFETIME_SECONDS).
 */
import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';

export interface JwtSettings {
  secret: string | null;
  jwksUrl: string | null;
  issuer: string | null;
  audience: string | null;
  algorithms: string[];
  /** The longest lifetime accepted: `exp − iat`, or `exp − now` for a token without `iat`. */
  maxLifetimeSeconds: number;
}

/** Seconds of clock skew tolerated between the issuer and this service (exp, nbf, iat). */
const CLOCK_TOLERANCE_SECONDS = 30;

/** Why a token was refused, in words safe to show the caller (no key material, no claims echoed). */
export class JwtRejected extends Error {}

const jwksCache = new Map<string, JWTVerifyGetKey>();

function keyFor(settings: JwtSettings): Uint8Array | JWTVerifyGetKey {
  if (settings.jwksUrl) {
    let jwks = jwksCache.get(settings.jwksUrl);
    if (!jwks) {
      // createRemoteJWKSet caches keys and refetches on an unknown `kid`; one per isolate and URL.
      jwks = createRemoteJWKSet(new URL(settings.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
      jwksCache.set(settings.jwksUrl, jwks);
    }
    return jwks;
  }
  if (!settings.secret || settings.secret.length < 32) {
    throw new Error('JWT_SECRET must be set (at least 32 characters) when JWT_JWKS_URL is not');
  }
  return new TextEncoder().encode(settings.secret);
}

/** Verifies a compact JWT and returns its payload, or throws {@link JwtRejected} saying why. */
export async function verifyJwt(token: string, settings: JwtSettings): Promise<JWTPayload> {
  const key = keyFor(settings);
  if (settings.jwksUrl && (!settings.issuer || !settings.audience)) {
    // Fail closed: without both, any token the key set signs for any application would be accepted here.
    throw new JwtRejected(
      'This service verifies JWTs with a JWKS but has no JWT_ISSUER and JWT_AUDIENCE configured, so it accepts none.',
    );
  }
  let payload: JWTPayload;
  try {
    const options = {
      algorithms: settings.algorithms,
      requiredClaims: settings.jwksUrl ? ['exp', 'sub', 'iss', 'aud'] : ['exp', 'sub'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      ...(settings.issuer ? { issuer: settings.issuer } : {}),
      ...(settings.audience ? { audience: settings.audience } : {}),
    };
    ({ payload } =
      typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options));
  } catch (err) {
    throw new JwtRejected(describe(err));
  }
  checkSubjectAndLifetime(payload, settings.maxLifetimeSeconds);
  return payload;
}

/**
 * What jose leaves to us: a `sub` that names somebody (an empty one would act as user ""), and a bounded lifetime, so
 * a leaked token cannot be one that works for a year. `iat` in the future would stretch `exp − iat`: refused.
 */
function checkSubjectAndLifetime(payload: JWTPayload, maxLifetimeSeconds: number): void {
  if (typeof payload.sub !== 'string' || payload.sub.trim() === '') {
    throw new JwtRejected('The token\'s "sub" claim is empty: it must name the user or service.');
  }
  const now = Math.floor(Date.now() / 1000);
  const iat = typeof payload.iat === 'number' ? payload.iat : null;
  if (iat !== null && iat > now + CLOCK_TOLERANCE_SECONDS) {
    throw new JwtRejected('The token was issued in the future ("iat").');
  }
  const lifetime = payload.exp! - (iat ?? now);
  if (lifetime > maxLifetimeSeconds) {
    throw new JwtRejected(
      `The token's lifetime (${iat === null ? 'exp − now, as it has no "iat"' : 'exp − iat'}: ${lifetime} s) is ` +
        `longer than the ${maxLifetimeSeconds} s this service accepts (JWT_MAX_LIFETIME_SECONDS).`,
    );
  }
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'The token has expired.';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing' || err.claim === 'exp' || err.claim === 'sub') {
      return `The token has no "${err.claim}" claim.`;
    }
    if (err.claim === 'iss') return 'The token was issued by an issuer this service does not trust.';
    if (err.claim === 'aud') return 'The token is meant for another audience.';
    if (err.claim === 'nbf') return 'The token is not valid yet.';
    return `The token's "${err.claim}" claim is not acceptable.`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed)
    return 'The token is signed with an algorithm this service does not accept.';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'The token signature is not valid.';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'The token is malformed.';
  if (err instanceof errors.JWKSNoMatchingKey) return 'The token was signed with an unknown key.';
  return 'The token could not be verified.';
}
