/** Keys, workspaces and settings. */
import type { Kysely, Migration } from 'kysely';

export const m0001Initial: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.createTable('api_keys')
      .addColumn('client_id', 'text', (c) => c.primaryKey())
      .addColumn('secret_hash', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('namespace', 'text')
      .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('revoked_at', 'text')
      .execute();
    await db.schema.createTable('workspaces')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('slug', 'text', (c) => c.unique())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('namespace', 'text')
      .addColumn('image', 'text', (c) => c.notNull())
      .addColumn('mode', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('driver', 'text', (c) => c.notNull())
      .addColumn('slot_index', 'integer', (c) => c.unique())
      .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('agent_secret', 'text', (c) => c.notNull())
      .addColumn('runtime_enabled', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('runtime_token_gen', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('config', 'text', (c) => c.notNull())
      .addColumn('provisioning', 'text')
      .addColumn('ttl_expires_at', 'text')
      .addColumn('idempotency_key', 'text')
      .addColumn('user_requested_stop', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('state_changed_at', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('workspaces_idempotency').on('workspaces').columns(['owner', 'idempotency_key']).unique().execute();
    await db.schema.createIndex('workspaces_ttl').on('workspaces').column('ttl_expires_at').execute();
    await db.schema.createTable('settings')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
  },
};
