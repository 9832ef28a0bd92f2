/**
 * JWT verification with jose (docs/design.md#identity-access-and-limits): HS256 with a shared secret locally, or a JWKS
 * URL (RS256/ES256) in production; an algorithm allow-list; `exp` required; `iss`/`aud` checked when configured.
 */
import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';

export interface JwtSettings {
  secret: string | null;
  jwksUrl: string | null;
  issuer: string | null;
  audience: string | null;
  algorithms: string[];
}

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
  try {
    const options = {
      algorithms: settings.algorithms,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: 30,
      ...(settings.issuer ? { issuer: settings.issuer } : {}),
      ...(settings.audience ? { audience: settings.audience } : {}),
    };
    const { payload } =
      typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
    return payload;
  } catch (err) {
    throw new JwtRejected(describe(err));
  }
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'The token has expired.';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'exp' || err.claim === 'sub') return `The token has no "${err.claim}" claim.`;
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
