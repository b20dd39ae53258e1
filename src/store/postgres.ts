/**
 * The store on PostgreSQL: the same Database type and the same migrations
 * as SQLite (db.ts), through kysely's PostgreSQL dialect over a `pg` pool.
 * Several hearthd processes may open one database at once: kysely's
 * migrator takes a row lock on its own lock table, so concurrent starts
 * migrate once.
 *
 * Values read back the same as SQLite's: the pool parses `bigint` (counts,
 * byte sizes) and `numeric` (sums) into JS numbers instead of strings.
 */
import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { migrateToLatest, type Database, type Db } from './db.ts';

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/** `pg` returns 64-bit integers and numerics as strings (they may not fit a double); Hearth's fit, and SQLite gives numbers. */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format ?? 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

export function isPostgresUrl(spec: string): boolean {
  return /^postgres(ql)?:\/\//i.test(spec);
}

/** The URL with its password replaced, for logs and errors. */
export function redactUrl(spec: string): string {
  return spec.replace(/^(postgres(?:ql)?:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
}

export interface PostgresOptions {
  /** Pool size (default 10): queries plus the connections that hold shared locks (store/shared-locks.ts). */
  max?: number;
  /** Told about settings that work but make behaviour differ from SQLite (collation). */
  warn?: (message: string) => void;
}

/** Open (and migrate) the PostgreSQL store at `url` (`postgresql://user:pass@host:port/db`, or `?host=/socket/dir`). */
export async function openPostgres(url: string, opts: PostgresOptions = {}): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, types, application_name: 'hearthd' });
  // An idle connection the server drops must not take the process down: the pool replaces it on next use.
  pool.on('error', (err) => opts.warn?.(`store connection lost: ${err.message}`));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy();
    throw new Error(`cannot reach the PostgreSQL store ${redactUrl(url)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const collation = await sql<{ c: string }>`select datcollate as c from pg_database where datname = current_database()`.execute(db);
  const c = collation.rows[0]?.c ?? '';
  if (c !== 'C' && c !== 'POSIX') {
    // SQLite compares text bytewise; PostgreSQL in a language collation sorts names (and so pages of lists) differently.
    opts.warn?.(`the store database's collation is ${c}: lists sort as SQLite's only under C (create it with LC_COLLATE 'C' TEMPLATE template0)`);
  }
  try {
    await migrateToLatest(db);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}
