/**
 * Console sign-ins: the one owner of the `console_sessions` and
 * `console_links` tables (migration 0008). A session is a random id kept by
 * the browser in an HttpOnly cookie and stored here only as its hash, with
 * the API key it acts as and its CSRF token. A sign-in link is a random
 * token, also stored by hash, that turns into a session once, before its
 * expiry; redeeming it is one conditional UPDATE, so two browsers racing on
 * one link cannot both win.
 */
import type { Kysely } from 'kysely';
import { hashSecret, randomToken } from '../auth/secrets.ts';
import type { Db } from '../store/db.ts';

interface ConsoleTables {
  console_sessions: { id_hash: string; client_id: string; csrf: string; created_at: string; expires_at: string };
  console_links: { token_hash: string; client_id: string; created_at: string; expires_at: string; used_at: string | null };
}

/** A signed-in browser stays signed in this long (sliding is not needed: the console is an operator's tool). */
export const SESSION_TTL_MS = 12 * 3600_000;
/** A sign-in link printed by `hearth console-link` works once, within this. */
export const LINK_TTL_MS = 10 * 60_000;

export interface ConsoleSession {
  clientId: string;
  csrf: string;
  expiresAt: Date;
}

export class ConsoleSessions {
  private readonly db: Kysely<ConsoleTables>;

  constructor(db: Db, private readonly now: () => number = Date.now) {
    // These two tables are the console's own; the rest of the store's types are not needed here.
    this.db = db as unknown as Kysely<ConsoleTables>;
  }

  /** A new session for this key: the id goes to the cookie, the CSRF token to the page. */
  async create(clientId: string): Promise<{ id: string; csrf: string; expiresAt: Date }> {
    const id = randomToken(32);
    const csrf = randomToken(24);
    const at = this.now();
    const expiresAt = new Date(at + SESSION_TTL_MS);
    await this.db.insertInto('console_sessions').values({
      id_hash: hashSecret(id), client_id: clientId, csrf, created_at: new Date(at).toISOString(), expires_at: expiresAt.toISOString(),
    }).execute();
    // Expired rows go on the way: no timer to own.
    await this.db.deleteFrom('console_sessions').where('expires_at', '<', new Date(at).toISOString()).execute();
    return { id, csrf, expiresAt };
  }

  async find(id: string): Promise<ConsoleSession | null> {
    const row = await this.db.selectFrom('console_sessions').selectAll().where('id_hash', '=', hashSecret(id)).executeTakeFirst();
    if (!row || Date.parse(row.expires_at) <= this.now()) return null;
    return { clientId: row.client_id, csrf: row.csrf, expiresAt: new Date(row.expires_at) };
  }

  async end(id: string): Promise<void> {
    await this.db.deleteFrom('console_sessions').where('id_hash', '=', hashSecret(id)).execute();
  }

  /** A one-time sign-in link token for this key. */
  async createLink(clientId: string, ttlMs = LINK_TTL_MS): Promise<{ token: string; expiresAt: Date }> {
    const token = randomToken(32);
    const at = this.now();
    const expiresAt = new Date(at + ttlMs);
    await this.db.insertInto('console_links').values({
      token_hash: hashSecret(token), client_id: clientId, created_at: new Date(at).toISOString(), expires_at: expiresAt.toISOString(), used_at: null,
    }).execute();
    await this.db.deleteFrom('console_links').where('expires_at', '<', new Date(at - LINK_TTL_MS).toISOString()).execute();
    return { token, expiresAt };
  }

  /** The key a link signs in as, or null when it is unknown, used or expired. Marks it used. */
  async redeemLink(token: string): Promise<string | null> {
    const hash = hashSecret(token);
    const nowIso = new Date(this.now()).toISOString();
    const res = await this.db.updateTable('console_links').set({ used_at: nowIso })
      .where('token_hash', '=', hash).where('used_at', 'is', null).where('expires_at', '>', nowIso)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return null;
    const row = await this.db.selectFrom('console_links').select('client_id').where('token_hash', '=', hash).executeTakeFirst();
    return row?.client_id ?? null;
  }
}
