/**
 * Runtime tokens at the gateway: where a request carries one, and a cache
 * of verified claims so the hot path does not recompute an HMAC per
 * request. Only the signature check is cached; revocation (rotate,
 * disable, delete) is checked against the workspace row on every request,
 * so it takes effect at once whatever the cache holds.
 */
import type { RuntimeIssuer, TokenSigner } from '../auth/jwt.ts';

export interface RuntimeGrant {
  /** Workspace id the token names. */
  ws: string;
  /** Token generation; the workspace's current one must match. */
  gen: number;
  /** Expiry, epoch ms. */
  expMs: number;
  /** The credential that minted it (null: an old token without one, refused). */
  issuer: RuntimeIssuer | null;
}

/**
 * The token of a request: `Authorization: Bearer …`, else the `token`
 * query parameter (WebSockets, whose browser API cannot set headers, and
 * the proxy form of spec §22.10). Parses the query only when needed.
 */
export function requestToken(authorization: string | undefined, rawUrl: string | undefined): string | null {
  if (authorization) {
    const m = /^bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m) return m[1]!;
  }
  const url = rawUrl ?? '/';
  const q = url.indexOf('?');
  if (q < 0 || !url.includes('token=', q)) return null;
  return new URLSearchParams(url.slice(q + 1)).get('token');
}

/** `rawUrl` without the `token` query parameter (it must never reach the agent or a proxied app). */
export function withoutToken(rawUrl: string | undefined): string {
  const url = rawUrl ?? '/';
  const q = url.indexOf('?');
  if (q < 0 || !url.includes('token=', q)) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  params.delete('token');
  const rest = params.toString();
  return url.slice(0, q) + (rest ? `?${rest}` : '');
}

/** Verified runtime grants, bounded; entries past their expiry are never served. */
export class TokenCache {
  private readonly grants = new Map<string, RuntimeGrant>();

  constructor(
    private readonly signer: Pick<TokenSigner, 'verify'>,
    private readonly max = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The grant of a valid runtime token, or null (bad signature, expired, not a runtime token). */
  async verify(token: string): Promise<RuntimeGrant | null> {
    const hit = this.grants.get(token);
    if (hit) {
      if (hit.expMs > this.now()) return hit;
      this.grants.delete(token);
      return null;
    }
    const claims = await this.signer.verify(token);
    if (!claims || claims.kind !== 'runtime') return null;
    const grant: RuntimeGrant = { ws: claims.ws, gen: claims.gen, expMs: claims.exp * 1000, issuer: claims.issuer ?? null };
    if (grant.expMs <= this.now()) return null;
    if (this.grants.size >= this.max) {
      // Oldest first (Map keeps insertion order): a cheap bound, not an LRU.
      const oldest = this.grants.keys().next().value;
      if (oldest !== undefined) this.grants.delete(oldest);
    }
    this.grants.set(token, grant);
    return grant;
  }

  get size(): number {
    return this.grants.size;
  }
}
