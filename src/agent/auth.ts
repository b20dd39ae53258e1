/**
 * Every request carries the per-workspace secret: `Authorization: Bearer`
 * on HTTP, and on WebSockets optionally `?token=` (browsers cannot set
 * headers on a WebSocket; the SDK uses the query form, spec §22.9).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Hash both sides first so the comparison is constant-time whatever the lengths. */
function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export function secretMatches(presented: string | undefined, secret: string): boolean {
  if (presented === undefined || presented.length === 0) return false;
  return timingSafeEqual(digest(presented), digest(secret));
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h.trim());
  return m ? (m[1] as string).trim() : undefined;
}

/** HTTP requests: header only. */
export function isAuthorized(req: IncomingMessage, secret: string): boolean {
  return secretMatches(bearerToken(req), secret);
}

/** WebSocket upgrades: header, else the `token` query parameter. */
export function isAuthorizedUpgrade(req: IncomingMessage, url: URL, secret: string): boolean {
  return secretMatches(bearerToken(req), secret) || secretMatches(url.searchParams.get('token') ?? undefined, secret);
}
