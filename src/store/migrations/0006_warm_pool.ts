/**
 * Pooled sandboxes (src/control/warm-pool/): one row per pre-started
 * sandbox, so a restarted hearthd adopts or removes what an earlier one
 * started. A row is never a workspace: it holds a network slot and a
 * workspace id not yet used, and counts toward no tenant's quota or usage.
 * `state`: filling (its sandbox is starting), ready (it may be claimed),
 * claimed (a create took it and is applying its identity).
 */
import type { Kysely, Migration } from 'kysely';

export const m0006WarmPool: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.createTable('warm_pool')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('pool_key', 'text', (c) => c.notNull())
      .addColumn('shape', 'text', (c) => c.notNull())
      .addColumn('slot_index', 'integer', (c) => c.notNull().unique())
      .addColumn('secret', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('warm_pool').ifExists().execute();
  },
};
