/**
 * Hosts (issue 19): one row per machine that runs workspaces, with the
 * capacity it registered, what it can run, whether it takes new workspaces
 * (`status`: active | draining) and its last heartbeat; health (up | down)
 * is derived from the heartbeat's age, never stored. `workspaces.host_name`
 * says which host a workspace was placed on (null: rows from before hosts
 * existed, adopted by the first host that registers on the store).
 */
import type { Kysely, Migration } from 'kysely';
import { doubleType } from '../dialect.ts';

export const m0010Hosts: Migration = {
  async up(db: Kysely<unknown>) {
    const real = doubleType(db);
    await db.schema.createTable('hosts')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('role', 'text', (c) => c.notNull()) // both (hearth serve) | host
      .addColumn('address', 'text')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
      .addColumn('cpus', 'integer', (c) => c.notNull())
      .addColumn('memory_mb', 'integer', (c) => c.notNull())
      .addColumn('disk_mb', 'integer', (c) => c.notNull())
      .addColumn('cpu_overcommit', real, (c) => c.notNull())
      .addColumn('memory_overcommit', real, (c) => c.notNull())
      .addColumn('disk_overcommit', real, (c) => c.notNull())
      .addColumn('drivers', 'text', (c) => c.notNull().defaultTo('[]')) // JSON list
      .addColumn('images', 'text', (c) => c.notNull().defaultTo('[]')) // JSON list of image names present
      .addColumn('version', 'text')
      .addColumn('registered_at', 'text', (c) => c.notNull())
      .addColumn('heartbeat_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.alterTable('workspaces').addColumn('host_name', 'text').execute();
    await db.schema.createIndex('workspaces_host').on('workspaces').column('host_name').execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropIndex('workspaces_host').ifExists().execute();
    await db.schema.alterTable('workspaces').dropColumn('host_name').execute();
    await db.schema.dropTable('hosts').ifExists().execute();
  },
};
