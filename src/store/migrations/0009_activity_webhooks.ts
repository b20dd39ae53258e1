/**
 * The account's activity log (every state-changing API call: who, what,
 * when, result; src/control/activity.ts) and webhooks with their delivery
 * log (src/control/webhooks/). Schema builder only, so it runs on SQLite
 * and PostgreSQL alike; ids are text, times ISO-8601 text like every table.
 */
import type { Kysely, Migration } from 'kysely';

export const m0009ActivityWebhooks: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.createTable('activity_log')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull()) // API key client id, or the token's subject
      .addColumn('actor_kind', 'text', (c) => c.notNull()) // key | token
      .addColumn('namespace', 'text')
      .addColumn('workspace_id', 'text')
      .addColumn('action', 'text', (c) => c.notNull()) // "POST /workspace/:id/stop"
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('status', 'integer', (c) => c.notNull())
      .addColumn('result', 'text', (c) => c.notNull()) // ok | error
      .addColumn('error_code', 'text')
      .addColumn('request_id', 'text')
      .addColumn('ip', 'text')
      .execute();
    await db.schema.createIndex('activity_log_at').on('activity_log').columns(['at']).execute();
    await db.schema.createIndex('activity_log_workspace').on('activity_log').columns(['workspace_id', 'at']).execute();

    await db.schema.createTable('webhooks')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('namespace', 'text')
      .addColumn('url', 'text', (c) => c.notNull())
      .addColumn('events', 'text', (c) => c.notNull()) // JSON list
      .addColumn('secret', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('active', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createTable('webhook_deliveries')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('webhook_id', 'text', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
      .addColumn('event', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull()) // pending | delivered | failed
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('next_attempt_at', 'text')
      .addColumn('last_status', 'integer')
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('delivered_at', 'text')
      .execute();
    await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
    await db.schema.createIndex('webhook_deliveries_hook').on('webhook_deliveries').columns(['webhook_id', 'created_at']).execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('webhook_deliveries').ifExists().execute();
    await db.schema.dropTable('webhooks').ifExists().execute();
    await db.schema.dropTable('activity_log').ifExists().execute();
  },
};
