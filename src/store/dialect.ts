/**
 * The two SQL dialects the store runs on, and the few places they differ.
 * Queries are written once with kysely; what cannot be written the same
 * way on SQLite and PostgreSQL is named here, so a migration or a service
 * asks "which column type / which operator" instead of branching itself.
 *
 * What each choice keeps equal on both (docs/parts/store-and-hosts.md):
 * - auto-increment ids: SQLite `integer primary key autoincrement`, PostgreSQL `serial`;
 * - floating point: SQLite `real` is an 8-byte double, PostgreSQL's `real` is
 *   4 bytes, so PostgreSQL gets `double precision`;
 * - byte counts past 2^31: SQLite `integer` is 64-bit, PostgreSQL's is 32, so
 *   PostgreSQL gets `bigint` (read back as a JS number by the pool's parsers);
 * - case-insensitive search: SQLite's LIKE folds ASCII case, PostgreSQL's
 *   does not, so PostgreSQL uses ILIKE;
 * - booleans stay integer 0/1 and timestamps stay ISO-8601 text on both,
 *   so rows read the same whichever store wrote them.
 */
import { PostgresAdapter, type ColumnDataType, type ColumnDefinitionBuilder, type Kysely } from 'kysely';

type DataTypeExpression = ColumnDataType;

export type DialectName = 'sqlite' | 'postgres';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any Kysely, typed or not (migrations see Kysely<unknown>)
type AnyDb = Kysely<any>;

export function dialectOf(db: AnyDb): DialectName {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

type ColumnBuild = (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;

/** An auto-increment integer primary key: `.addColumn('id', ...autoId(db))`. */
export function autoId(db: AnyDb): [DataTypeExpression, ColumnBuild] {
  return dialectOf(db) === 'postgres'
    ? ['serial', (c) => c.primaryKey()]
    : ['integer', (c) => c.primaryKey().autoIncrement()];
}

/** An 8-byte float on both (SQLite's `real`). */
export function doubleType(db: AnyDb): DataTypeExpression {
  return dialectOf(db) === 'postgres' ? 'double precision' : 'real';
}

/** A 64-bit integer on both (SQLite's `integer`). */
export function bigIntType(db: AnyDb): DataTypeExpression {
  return dialectOf(db) === 'postgres' ? 'bigint' : 'integer';
}

/** The operator for an ASCII-case-insensitive pattern match, as SQLite's LIKE is. */
export function likeInsensitive(db: AnyDb): 'like' | 'ilike' {
  return dialectOf(db) === 'postgres' ? 'ilike' : 'like';
}
