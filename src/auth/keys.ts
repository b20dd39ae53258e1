/**
 * API keys (client id + secret), revoked access tokens and control-plane
 * authentication: the one owner of the `api_keys` and `revoked_tokens`
 * tables. The secret is shown once at creation and stored only as a hash.
 */
import type { Db } from '../store/db.ts';
import { RateLimited, Unauthenticated } from '../core/errors.ts';
import { RateLimiter } from '../core/rate-limit.ts';
import { hashSecret, randomId, randomToken, secretMatches } from './secrets.ts';
import type { RuntimeIssuer, TokenSigner } from './jwt.ts';
import type { Principal } from './principal.ts';
import { ALL_GRANTS } from '../core/grants.ts';

export interface NewKey {
  clientId: string;
  clientSecret: string;
}

export async function createApiKey(db: Db, opts: { name: string; admin: boolean; namespace?: string | null }): Promise<NewKey> {
  const clientId = randomId('hk_', 16);
  const clientSecret = `hs_${randomToken(32)}`;
  await db.insertInto('api_keys').values({
    client_id: clientId, secret_hash: hashSecret(clientSecret), name: opts.name,
    namespace: opts.namespace ?? null, is_admin: opts.admin ? 1 : 0, created_at: new Date().toISOString(), revoked_at: null,
  }).execute();
  return { clientId, clientSecret };
}

type Headers = Record<string, string | string[] | undefined>;

function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A credential bound to a namespace must not predate it: a namespace deleted
 * and created again under the same slug is a new tenant, and whatever was
 * issued for the old one (keys, which deletion also revokes; scoped tokens,
 * which cannot be revoked in bulk) must not reach the new one's workspaces.
 * `issuedAtMs` has second precision for tokens: `slackMs` absorbs that.
 */
async function predatesNamespace(db: Db, slug: string | null | undefined, issuedAtMs: number, slackMs: number, boundId: string | null = null): Promise<boolean> {
  if (!slug) return false;
  const ns = await db.selectFrom('namespaces').select(['id', 'created_at']).where('slug', '=', slug).executeTakeFirst();
  // A token bound to a namespace id is exact: another id under the slug, or none, is another tenant.
  if (boundId) return ns?.id !== boundId;
  return !!ns && Date.parse(ns.created_at) > issuedAtMs + slackMs;
}

/** Revoke every live key of a namespace (it is being deleted); returns how many. */
export async function revokeNamespaceKeys(db: Db, slug: string): Promise<number> {
  const res = await db.updateTable('api_keys').set({ revoked_at: new Date().toISOString() }).where('namespace', '=', slug).where('revoked_at', 'is', null).executeTakeFirst();
  return Number(res.numUpdatedRows);
}

/**
 * Who is calling: `X-Client-ID`/`X-Client-Secret`, or `Authorization: Bearer <access JWT>`.
 * Throws Unauthenticated (401) only for missing or bad credentials.
 */
export async function authenticate(db: Db, signer: TokenSigner, headers: Headers): Promise<Principal> {
  const auth = header(headers, 'authorization');
  if (auth && /^bearer\s+/i.test(auth)) {
    const token = auth.replace(/^bearer\s+/i, '').trim();
    const claims = token ? await signer.verify(token) : null;
    if (!claims || claims.kind !== 'access') throw new Unauthenticated('invalid or expired bearer token');
    const revoked = await db.selectFrom('revoked_tokens').select('jti').where('jti', '=', claims.jti).executeTakeFirst();
    if (revoked) throw new Unauthenticated('this token was revoked');
    const key = await db.selectFrom('api_keys').selectAll().where('client_id', '=', claims.sub).executeTakeFirst();
    if (!key || key.revoked_at) throw new Unauthenticated('the API key that issued this token was revoked');
    if (await predatesNamespace(db, claims.namespace ?? key.namespace, claims.iat * 1000, 1000, claims.namespace ? claims.namespace_id ?? null : null)) {
      throw new Unauthenticated('this token was issued for a namespace that has since been deleted: mint a new one');
    }
    return {
      kind: 'token', clientId: claims.sub, admin: false,
      namespace: claims.namespace ?? key.namespace ?? null,
      workspaceId: claims.workspace ?? null,
      // Tokens minted before grants existed, or without them, get none: fail closed.
      grants: claims.grants ?? { ...ALL_GRANTS, create: false, destroy: false, expose: false, runtime: false, manage: false },
      tokenId: claims.jti,
    };
  }
  const clientId = header(headers, 'x-client-id');
  const secret = header(headers, 'x-client-secret');
  if (!clientId || !secret) {
    throw new Unauthenticated('missing credentials: send X-Client-ID and X-Client-Secret, or Authorization: Bearer <token>', 'missing');
  }
  const key = await db.selectFrom('api_keys').selectAll().where('client_id', '=', clientId).executeTakeFirst();
  if (!key || key.revoked_at || !secretMatches(secret, key.secret_hash)) throw new Unauthenticated('invalid client id or secret');
  if (await predatesNamespace(db, key.namespace, Date.parse(key.created_at), 0)) throw new Unauthenticated('this key belongs to a namespace that has since been deleted');
  return { kind: 'key', clientId, admin: key.is_admin === 1, namespace: key.namespace, workspaceId: null, grants: ALL_GRANTS, tokenId: null };
}

/**
 * The principal of a live API key known by its id alone: what a web console
 * session acts as (it holds the key's id, never its secret). The same checks
 * as a key's authentication, minus the secret.
 */
export async function keyPrincipal(db: Db, clientId: string): Promise<Principal> {
  const key = await db.selectFrom('api_keys').selectAll().where('client_id', '=', clientId).executeTakeFirst();
  if (!key || key.revoked_at) throw new Unauthenticated('the API key of this console session was revoked: sign in again');
  if (await predatesNamespace(db, key.namespace, Date.parse(key.created_at), 0)) throw new Unauthenticated('this key belongs to a namespace that has since been deleted');
  return { kind: 'key', clientId, admin: key.is_admin === 1, namespace: key.namespace, workspaceId: null, grants: ALL_GRANTS, tokenId: null };
}

/** A key as listed to admins: never its secret or hash. */
export interface ApiKeyInfo {
  client_id: string;
  name: string;
  namespace: string | null;
  is_admin: boolean;
  created_at: string;
  revoked_at: string | null;
}

/** The service the control plane's routes use for credentials. */
/**
 * How many bad credentials one client address may send: 50 at once, one a
 * second back. Past that its requests are refused (429) before any key is
 * looked up, so guessing secrets or token signatures is paced, not free.
 * Missing credentials do not count: they guess nothing.
 */
export interface AuthFailureLimits {
  burst: number;
  perSecond: number;
}

export const DEFAULT_AUTH_FAILURE_LIMITS: AuthFailureLimits = { burst: 50, perSecond: 1 };

/** How long an issuer's liveness is believed without asking the store again (revocations here clear it at once). */
const ISSUER_CACHE_MS = 2000;

export class ApiKeys {
  private readonly failures: RateLimiter;
  private readonly issuers = new Map<string, { alive: boolean; at: number }>();

  constructor(private readonly db: Db, private readonly signer: TokenSigner, limits: AuthFailureLimits = DEFAULT_AUTH_FAILURE_LIMITS) {
    this.failures = new RateLimiter(limits);
  }

  /** Who is calling; `source` (the client address) pays for every bad credential it sends. */
  async authenticate(headers: Headers, source?: string): Promise<Principal> {
    if (source !== undefined) {
      const wait = this.failures.retryAfterMs(source, Date.now());
      if (wait > 0) throw new RateLimited('too many failed authentication attempts from this address', wait);
    }
    try {
      return await authenticate(this.db, this.signer, headers);
    } catch (err) {
      if (source !== undefined && err instanceof Unauthenticated && err.reason === 'invalid') this.failures.take(source, Date.now());
      throw err;
    }
  }

  create(opts: { name: string; admin: boolean; namespace?: string | null }): Promise<NewKey> {
    return createApiKey(this.db, opts);
  }

  /** On first start: the admin API key. Returns null when a live admin key exists already. */
  async ensureAdmin(): Promise<NewKey | null> {
    const existing = await this.db.selectFrom('api_keys').select('client_id').where('is_admin', '=', 1).where('revoked_at', 'is', null).executeTakeFirst();
    if (existing) return null;
    return createApiKey(this.db, { name: 'admin', admin: true });
  }

  async list(): Promise<ApiKeyInfo[]> {
    const rows = await this.db.selectFrom('api_keys').select(['client_id', 'name', 'namespace', 'is_admin', 'created_at', 'revoked_at']).orderBy('created_at').execute();
    return rows.map((k) => ({ ...k, is_admin: k.is_admin === 1 }));
  }

  /** Revoke a live key; false when no live key has that id. */
  async revoke(clientId: string): Promise<boolean> {
    const res = await this.db.updateTable('api_keys').set({ revoked_at: new Date().toISOString() }).where('client_id', '=', clientId).where('revoked_at', 'is', null).executeTakeFirst();
    this.issuers.clear();
    return Number(res.numUpdatedRows) > 0;
  }

  /**
   * Whether the credential that minted a runtime token still stands: its
   * API key is live and, when it came through a scoped token, that token
   * was not revoked. A token without an issuer (minted before they were
   * recorded) fails closed. Cached briefly: the gateway asks on every request
   * and every session sweep.
   */
  async issuerAlive(issuer: RuntimeIssuer | null | undefined): Promise<boolean> {
    if (!issuer || typeof issuer.key !== 'string') return false;
    const cacheKey = `${issuer.key}\n${issuer.token ?? ''}`;
    const hit = this.issuers.get(cacheKey);
    if (hit && Date.now() - hit.at < ISSUER_CACHE_MS) return hit.alive;
    const key = await this.db.selectFrom('api_keys').select('revoked_at').where('client_id', '=', issuer.key).executeTakeFirst();
    let alive = !!key && !key.revoked_at;
    if (alive && issuer.token) alive = !(await this.db.selectFrom('revoked_tokens').select('jti').where('jti', '=', issuer.token).executeTakeFirst());
    if (this.issuers.size >= 10_000) this.issuers.clear();
    this.issuers.set(cacheKey, { alive, at: Date.now() });
    return alive;
  }

  /** Blacklist an access token's jti until it would expire anyway; false when it is already invalid. */
  async revokeToken(token: string): Promise<boolean> {
    const claims = await this.signer.verify(token);
    if (!claims) return false;
    await this.db.insertInto('revoked_tokens').values({ jti: claims.jti, expires_at: new Date(claims.exp * 1000).toISOString() })
      .onConflict((oc) => oc.column('jti').doNothing()).execute();
    this.issuers.clear();
    return true;
  }
}
