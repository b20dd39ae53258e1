/**
 * Public access and SSH (issue 7): the edge's hostname claims, exposed
 * ports, per-workspace custom domains, certificates and SSH access. Every
 * row hangs off its workspace (ON DELETE CASCADE, foreign_keys is on), so a
 * deleted workspace releases its hostnames in the same transaction.
 */
import type { Kysely, Migration } from 'kysely';

export const m0003PublicAccess: Migration = {
  async up(db: Kysely<unknown>) {
    // One row per hostname the edge answers for: the primary key is what makes
    // "a domain already taken by another workspace" a 409 without races.
    await db.schema.createTable('edge_hosts')
      .addColumn('hostname', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
      .addColumn('port', 'integer', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull()) // preview | port | domain
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('edge_hosts_ws').on('edge_hosts').columns(['workspace_id', 'port']).execute();

    await db.schema.createTable('public_ports')
      .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
      .addColumn('port', 'integer', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull().unique())
      .addColumn('slug', 'text')
      .addColumn('domain', 'text')
      .addColumn('hostname', 'text', (c) => c.notNull())
      .addColumn('label', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('public_ports_pk', ['workspace_id', 'port'])
      .execute();

    await db.schema.createTable('workspace_domains')
      .addColumn('workspace_id', 'text', (c) => c.primaryKey().references('workspaces.id').onDelete('cascade'))
      .addColumn('domain', 'text', (c) => c.notNull().unique())
      .addColumn('port', 'integer', (c) => c.notNull())
      .addColumn('include_www', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();

    // Certificates live as files in the data dir (edge/certs/<hostname>/); this is their index.
    await db.schema.createTable('edge_certificates')
      .addColumn('hostname', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text')
      .addColumn('source', 'text', (c) => c.notNull()) // acme | hearth-ca
      .addColumn('status', 'text', (c) => c.notNull()) // pending | active | failed
      .addColumn('auto_renew', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('expires_at', 'text')
      .addColumn('last_attempt_at', 'text')
      .addColumn('last_error', 'text')
      .addColumn('renew_attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema.createTable('ssh_access')
      .addColumn('workspace_id', 'text', (c) => c.primaryKey().references('workspaces.id').onDelete('cascade'))
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('login_user', 'text', (c) => c.notNull().defaultTo('root'))
      .addColumn('password_hash', 'text')
      .addColumn('password_changed_at', 'text')
      .addColumn('public_keys', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('ssh_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>) {
    for (const t of ['ssh_access', 'edge_certificates', 'workspace_domains', 'public_ports', 'edge_hosts']) await db.schema.dropTable(t).ifExists().execute();
  },
};
