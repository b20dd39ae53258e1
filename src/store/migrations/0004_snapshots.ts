/** Workspace snapshots and versioned archives (src/control/snapshots.ts). Their bytes live in the data dir. */
import type { Kysely, Migration } from 'kysely';
import { bigIntType } from '../dialect.ts';

export const m0004Snapshots: Migration = {
  async up(db: Kysely<unknown>) {
    const bigint = bigIntType(db);
    await db.schema.createTable('snapshots')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('namespace', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('driver', 'text', (c) => c.notNull())
      .addColumn('format', 'text')
      .addColumn('kinds', 'text')
      .addColumn('size_bytes', bigint, (c) => c.notNull().defaultTo(0))
      .addColumn('after', 'text', (c) => c.notNull())
      .addColumn('image', 'text', (c) => c.notNull())
      .addColumn('image_digest', 'text')
      .addColumn('label', 'text')
      .addColumn('error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('completed_at', 'text')
      .execute();
    await db.schema.createIndex('snapshots_workspace').on('snapshots').columns(['workspace_id', 'created_at']).execute();
    await db.schema.createTable('archives')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('namespace', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('format', 'text', (c) => c.notNull())
      .addColumn('size_bytes', bigint, (c) => c.notNull().defaultTo(0))
      .addColumn('sha256', 'text')
      .addColumn('paths', 'text')
      .addColumn('exclude_paths', 'text')
      .addColumn('file', 'text')
      .addColumn('image', 'text')
      .addColumn('error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('completed_at', 'text')
      .addPrimaryKeyConstraint('archives_pk', ['workspace_id', 'version'])
      .execute();
  },
};
