/**
 * Authentication with one more credential form, for the console's proxy
 * only: `X-Hearth-Console-Session: <proxy secret>.<session id>`. The proxy
 * (server.ts) adds it to each request it forwards to the API after checking
 * the cookie and the CSRF token; the secret is random per process and never
 * leaves it, so a caller outside hearthd cannot present a session this way.
 * The session becomes its API key's principal, and the API's own route
 * table authorizes it like any call made with that key.
 */
import { timingSafeEqual } from 'node:crypto';
import { ApiKeys, keyPrincipal, type AuthFailureLimits, DEFAULT_AUTH_FAILURE_LIMITS } from '../auth/keys.ts';
import type { TokenSigner } from '../auth/jwt.ts';
import type { Principal } from '../auth/principal.ts';
import { randomToken } from '../auth/secrets.ts';
import { Unauthenticated } from '../core/errors.ts';
import type { Db } from '../store/db.ts';
import type { ConsoleSessions } from './sessions.ts';

export const CONSOLE_SESSION_HEADER = 'x-hearth-console-session';

export class ConsoleAwareKeys extends ApiKeys {
  /** What the proxy proves itself with. */
  readonly proxySecret = randomToken(32);

  constructor(private readonly store: Db, signer: TokenSigner, private readonly sessions: ConsoleSessions, limits: AuthFailureLimits = DEFAULT_AUTH_FAILURE_LIMITS) {
    super(store, signer, limits);
  }

  /** The header value the proxy sends for a session. */
  proxyHeader(sessionId: string): string {
    return `${this.proxySecret}.${sessionId}`;
  }

  override async authenticate(headers: Record<string, string | string[] | undefined>, source?: string): Promise<Principal> {
    const raw = headers[CONSOLE_SESSION_HEADER];
    if (raw === undefined) return super.authenticate(headers, source);
    const value = Array.isArray(raw) ? raw[0] ?? '' : raw;
    const dot = value.indexOf('.');
    const secret = Buffer.from(dot < 0 ? '' : value.slice(0, dot));
    const mine = Buffer.from(this.proxySecret);
    // 256 random bits: nothing to pace, only to refuse.
    if (secret.length !== mine.length || !timingSafeEqual(secret, mine)) throw new Unauthenticated('this console session header was not sent by the console');
    const session = await this.sessions.find(value.slice(dot + 1));
    if (!session) throw new Unauthenticated('the console session ended: sign in again');
    return keyPrincipal(this.store, session.clientId);
  }
}
