/**
 * Locks that hold across every hearthd on one store. On SQLite there is one
 * hearthd per store and its in-process locks are enough, so `run` only runs
 * `fn` (today's behaviour, unchanged). On PostgreSQL, `run` holds a session
 * advisory lock on a connection of its own for the whole of `fn`, so a
 * check-then-insert (a namespace limit, a free slot, an idempotency key) on
 * one node cannot interleave with the same on another node.
 *
 * Why an advisory lock rather than the alternatives
 * (docs/parts/store-and-hosts.md, "Locking"):
 * - `SELECT … FOR UPDATE` locks rows that exist; a limit is broken by rows
 *   that do not exist yet (the phantom sixth workspace), and a namespace
 *   may have no row at all (created on first use);
 * - SERIALIZABLE with retry would re-run admission, which calls the host
 *   (image resolution) and is not free to repeat; and SQLite has no
 *   equivalent, so the two stores would behave differently under races;
 * - an advisory lock is released by PostgreSQL when its session ends, so a
 *   node killed mid-create never leaves the lock held.
 * `fn` runs its queries on other pool connections, each committed before
 * the lock is released, so the next holder sees them.
 */
import { sql } from 'kysely';
import type { Db } from './db.ts';
import { dialectOf } from './dialect.ts';

export interface SharedLocks {
  /** Whether the locks reach other processes (PostgreSQL) or only serialize nothing more than the caller's own (SQLite). */
  readonly crossProcess: boolean;
  run<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

/** Advisory lock ids are 64-bit: the key's hash, under a prefix so Hearth's never meet another application's. */
const lockId = (key: string) => sql`hashtextextended(${`hearth:${key}`}, 0)`;

export function sharedLocks(db: Db): SharedLocks {
  if (dialectOf(db) !== 'postgres') return { crossProcess: false, run: (_key, fn) => fn() };
  return {
    crossProcess: true,
    run: (key, fn) => db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock(${lockId(key)})`.execute(conn);
      try {
        return await fn();
      } finally {
        // A failed unlock means a dead session, and PostgreSQL drops a dead session's locks.
        await sql`select pg_advisory_unlock(${lockId(key)})`.execute(conn).catch(() => undefined);
      }
    }),
  };
}
