/**
 * The web console's sign-ins (src/console/sessions.ts): a session row per
 * signed-in browser, holding only the hash of its cookie, the API key it
 * acts as and its CSRF token; and one-time sign-in links printed by
 * `hearth console-link`, also stored by hash, each usable once before its
 * short expiry. Neither references api_keys by foreign key: a revoked key
 * keeps its row, and every request re-checks the key anyway.
 */
import type { Kysely, Migration } from 'kysely';

export const m0008Console: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.createTable('console_sessions')
      .addColumn('id_hash', 'text', (c) => c.primaryKey())
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('csrf', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('console_sessions_client').on('console_sessions').columns(['client_id']).execute();
    await db.schema.createTable('console_links')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('used_at', 'text')
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('console_links').ifExists().execute();
    await db.schema.dropTable('console_sessions').ifExists().execute();
  },
};
