/**
 * The store a test runs on: SQLite in memory by default, or a fresh
 * database on a throwaway PostgreSQL cluster when HEARTH_TEST_STORE=postgres
 * (test/helpers/postgres.ts), so the same tests run on both dialects:
 *
 *   HEARTH_TEST_STORE=postgres HEARTH_TEST_FILES="test/unit/api-workspaces.test.ts" node bin/test.mjs
 */
import { openSqlite, type Db } from '../../src/store/db.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { sharedPostgres } from './postgres.ts';

export type TestDialect = 'sqlite' | 'postgres';

export function testDialect(): TestDialect {
  const v = process.env.HEARTH_TEST_STORE ?? 'sqlite';
  if (v !== 'sqlite' && v !== 'postgres') throw new Error(`HEARTH_TEST_STORE=${v}: expected sqlite or postgres`);
  return v;
}

/** A fresh, migrated, empty store of `dialect`. */
export async function openTestStore(dialect: TestDialect = testDialect()): Promise<Db> {
  if (dialect === 'sqlite') return openSqlite(':memory:');
  return openPostgres(await sharedPostgres().createDatabase());
}

/** A URL of a fresh database for a hearthd under test (`--store`). */
export function freshPostgresUrl(): Promise<string> {
  return sharedPostgres().createDatabase();
}
