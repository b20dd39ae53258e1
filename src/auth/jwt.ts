/**
 * Hearth's signed tokens (HS256 JWTs, jose). Two kinds:
 *  - `access`: control-plane bearer tokens from POST /tokens (scoped).
 *  - `runtime`: data-plane tokens naming exactly one workspace, the
 *    workspace's token generation and the credential that minted them;
 *    rotate/disable bumps the generation and revoking the issuer ends them,
 *    so old tokens stop at once whatever their `exp`.
 */
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import type { Grants } from '../core/grants.ts';

/**
 * Who minted a runtime token: the API key behind the caller and, when the
 * caller used a scoped access token, that token's id. The gateway refuses a
 * runtime token whose issuer was revoked, so it cannot outlive the
 * credential that obtained it.
 */
export interface RuntimeIssuer {
  key: string;
  token: string | null;
}

export interface RuntimeClaims {
  kind: 'runtime';
  ws: string;
  gen: number;
  /** Absent on tokens minted before issuers were recorded: the gateway refuses those. */
  issuer?: RuntimeIssuer;
}

export interface AccessClaims {
  kind: 'access';
  sub: string;
  scope: 'namespace' | 'workspace' | 'account';
  namespace?: string | null;
  /** The id of that namespace when the token was minted: a namespace created again under the slug has another. */
  namespace_id?: string | null;
  workspace?: string | null;
  label?: string | null;
  grants?: Grants;
}

export type Claims = RuntimeClaims | AccessClaims;

export const RUNTIME_TOKEN_TTL_S = 3600;
const ISSUER = 'hearth';

export class TokenSigner {
  private readonly key: Uint8Array;
  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async sign(claims: Claims, ttlSeconds: number): Promise<{ token: string; expiresAt: Date }> {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .setJti(crypto.randomUUID())
      .sign(this.key);
    return { token, expiresAt: new Date((now + ttlSeconds) * 1000) };
  }

  /** Verified claims, or null for anything not signed by us, expired or malformed. */
  async verify(token: string): Promise<(Claims & { exp: number; iat: number; jti: string }) | null> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, algorithms: ['HS256'] });
      if (payload.kind !== 'runtime' && payload.kind !== 'access') return null;
      return payload as unknown as Claims & { exp: number; iat: number; jti: string };
    } catch (err) {
      if (err instanceof joseErrors.JOSEError) return null;
      throw err;
    }
  }
}
