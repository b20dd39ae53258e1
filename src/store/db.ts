/**
 * Persistence. One query layer (kysely) over SQLite (embedded default, in the
 * data dir) — PostgreSQL plugs in through the same Database type when Hearth
 * runs on several hosts. Migrations are ordered, named and recorded.
 */
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql, type Migration, Migrator, type MigrationProvider } from 'kysely';

export interface ApiKeyTable {
  client_id: string;
  secret_hash: string;
  name: string;
  namespace: string | null;
  is_admin: number;
  created_at: string;
  revoked_at: string | null;
}

export interface WorkspaceTable {
  id: string;
  slug: string | null;
  name: string;
  owner: string;
  namespace: string | null;
  image: string;
  mode: string;
  state: string;
  driver: string;
  slot_index: number | null;
  generation: number;
  agent_secret: string;
  runtime_enabled: number;
  runtime_token_gen: number;
  config: string;
  provisioning: string | null;
  ttl_expires_at: string | null;
  idempotency_key: string | null;
  user_requested_stop: number;
  state_changed_at: string;
  created_at: string;
  updated_at: string;
}

export interface SettingTable {
  key: string;
  value: string;
}

export interface Database {
  api_keys: ApiKeyTable;
  workspaces: WorkspaceTable;
  settings: SettingTable;
}

const migrations: Record<string, Migration> = {
  '0001_initial': {
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
  },
};

class StaticMigrations implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

export type Db = Kysely<Database>;

/** Open (and migrate) the SQLite store at `file` (`:memory:` for tests). */
export async function openSqlite(file: string): Promise<Db> {
  const native = new SQLite(file);
  native.pragma('journal_mode = WAL');
  native.pragma('synchronous = NORMAL');
  native.pragma('busy_timeout = 5000');
  native.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: native }) });
  const { error, results } = await new Migrator({ db, provider: new StaticMigrations() }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`store migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  return db;
}

export async function getSetting(db: Db, key: string): Promise<string | undefined> {
  const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  return row?.value;
}

export async function setSetting(db: Db, key: string, value: string): Promise<void> {
  await db.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
}

export { sql };
