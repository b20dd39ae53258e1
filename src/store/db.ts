/**
 * Persistence. One query layer (kysely) over SQLite (embedded default, in the
 * data dir) or PostgreSQL (store/postgres.ts, for several hearthd on one
 * database), through the same Database type. Migrations are ordered, named,
 * recorded, and the same set for both (store/dialect.ts).
 */
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql, type Generated, type Migration, Migrator, type MigrationProvider, type Selectable } from 'kysely';
import { migrations } from './migrations/index.ts';

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
  /** Up to when this workspace's running time has been metered. */
  metered_at: string | null;
  metadata: string | null;
}

export interface NamespaceTable {
  id: string;
  client_id: string;
  name: string;
  slug: string;
  description: string | null;
  status: string;
  type: string;
  is_default: number;
  metadata: string | null;
  tags: string | null;
  resource_limits: string | null;
  created_at: string;
  updated_at: string;
  last_active_at: string | null;
}

export interface NamespaceActivityTable {
  id: Generated<number>;
  namespace_id: string;
  user_id: string | null;
  action: string;
  description: string | null;
  changes: string | null;
  created_at: string;
}

export interface NamespaceQuotaTable {
  id: Generated<number>;
  client_id: string;
  namespace: string;
  service: string;
  quota_limit: number | null;
  quota_used: number;
  overdraft: number;
  on_overdraft_action: string;
  notification_thresholds: string | null;
  last_threshold_fired: number | null;
  enabled: number;
  tripped_at: string | null;
  created_at: string;
  updated_at: string;
}

export type QuotaRow = Selectable<NamespaceQuotaTable>;

export interface DefaultQuotaTable {
  id: Generated<number>;
  client_id: string;
  level: string;
  service: string;
  quota_limit: number | null;
  overdraft: number;
  on_overdraft_action: string;
  auto_apply: number;
  enabled: number;
  created_at: string;
  updated_at: string;
}

export interface UsageBucketTable {
  workspace_id: string;
  namespace: string | null;
  bucket: string;
  seconds: number;
  vcpu_seconds: number;
  memory_mb_seconds: number;
  disk_mb_seconds: number;
  cpu_used_seconds: number;
  egress_bytes: number;
  credits: number;
  records: number;
}

/** A pooled sandbox (migration 0006): never a workspace, so no tenant's. */
export interface WarmPoolTable {
  id: string;
  pool_key: string;
  /** The PoolShape (core/warm-pool.ts) as JSON. */
  shape: string;
  slot_index: number;
  /** The agent secret of the pool: replaced by the workspace's at claim. */
  secret: string;
  state: string;
  created_at: string;
}

export interface SettingTable {
  key: string;
  value: string;
}

export interface Database {
  api_keys: ApiKeyTable;
  workspaces: WorkspaceTable;
  settings: SettingTable;
  namespaces: NamespaceTable;
  namespace_activity: NamespaceActivityTable;
  namespace_quotas: NamespaceQuotaTable;
  default_quotas: DefaultQuotaTable;
  usage_buckets: UsageBucketTable;
  revoked_tokens: { jti: string; expires_at: string };
  warm_pool: WarmPoolTable;
}

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
  await migrateToLatest(db);
  return db;
}

/** Apply every migration not yet recorded (the same set on SQLite and PostgreSQL). */
export async function migrateToLatest(db: Db): Promise<void> {
  const { error, results } = await new Migrator({ db, provider: new StaticMigrations() }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`store migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export async function getSetting(db: Db, key: string): Promise<string | undefined> {
  const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  return row?.value;
}

export async function setSetting(db: Db, key: string, value: string): Promise<void> {
  await db.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
}

export { sql };
