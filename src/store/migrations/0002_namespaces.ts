/** Namespaces, their activity log and spending quotas; usage buckets for metering; revoked token ids. */
import type { Kysely, Migration } from 'kysely';
import { autoId, doubleType } from '../dialect.ts';

export const m0002Namespaces: Migration = {
  async up(db: Kysely<unknown>) {
    const real = doubleType(db);
    await db.schema.createTable('namespaces')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('slug', 'text', (c) => c.notNull().unique())
      .addColumn('description', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('metadata', 'text')
      .addColumn('tags', 'text')
      .addColumn('resource_limits', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('last_active_at', 'text')
      .execute();
    await db.schema.createTable('namespace_activity')
      .addColumn('id', ...autoId(db))
      .addColumn('namespace_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text')
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('changes', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('namespace_activity_ns').on('namespace_activity').columns(['namespace_id', 'id']).execute();
    await db.schema.createTable('namespace_quotas')
      .addColumn('id', ...autoId(db))
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('namespace', 'text', (c) => c.notNull())
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('quota_limit', real)
      .addColumn('quota_used', real, (c) => c.notNull().defaultTo(0))
      .addColumn('overdraft', real, (c) => c.notNull().defaultTo(0))
      .addColumn('on_overdraft_action', 'text', (c) => c.notNull())
      .addColumn('notification_thresholds', 'text')
      .addColumn('last_threshold_fired', real)
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('tripped_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('namespace_quotas_unique').on('namespace_quotas').columns(['namespace', 'service']).unique().execute();
    await db.schema.createTable('default_quotas')
      .addColumn('id', ...autoId(db))
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('level', 'text', (c) => c.notNull())
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('quota_limit', real)
      .addColumn('overdraft', real, (c) => c.notNull().defaultTo(0))
      .addColumn('on_overdraft_action', 'text', (c) => c.notNull())
      .addColumn('auto_apply', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('default_quotas_unique').on('default_quotas').columns(['level', 'service']).unique().execute();
    // One row per workspace per hour of metered time (deterministic buckets).
    await db.schema.createTable('usage_buckets')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('namespace', 'text')
      .addColumn('bucket', 'text', (c) => c.notNull())
      .addColumn('seconds', real, (c) => c.notNull().defaultTo(0))
      .addColumn('vcpu_seconds', real, (c) => c.notNull().defaultTo(0))
      .addColumn('memory_mb_seconds', real, (c) => c.notNull().defaultTo(0))
      .addColumn('disk_mb_seconds', real, (c) => c.notNull().defaultTo(0))
      .addColumn('cpu_used_seconds', real, (c) => c.notNull().defaultTo(0))
      .addColumn('egress_bytes', real, (c) => c.notNull().defaultTo(0))
      .addColumn('credits', real, (c) => c.notNull().defaultTo(0))
      .addColumn('records', 'integer', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('usage_buckets_pk', ['workspace_id', 'bucket'])
      .execute();
    await db.schema.createIndex('usage_buckets_ns').on('usage_buckets').columns(['namespace', 'bucket']).execute();
    await db.schema.alterTable('workspaces').addColumn('metered_at', 'text').execute();
    await db.schema.alterTable('workspaces').addColumn('metadata', 'text').execute();
    await db.schema.createTable('revoked_tokens')
      .addColumn('jti', 'text', (c) => c.primaryKey())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .execute();
  },
};
