/**
 * Which store hearthd opens: `--store postgresql://…` (or HEARTH_STORE) is
 * PostgreSQL, shared by every hearthd pointed at it; anything else is a
 * SQLite file, by default `hearth.db` in the data dir (the embedded default).
 */
import path from 'node:path';
import { openSqlite, type Db } from './db.ts';
import { isPostgresUrl, openPostgres, redactUrl } from './postgres.ts';

export interface StoreChoice {
  kind: 'sqlite' | 'postgres';
  /** What to log: the file, or the URL without its password. */
  describe: string;
}

export function chooseStore(spec: string | undefined, dataDir: string): StoreChoice & { target: string } {
  if (spec && isPostgresUrl(spec)) return { kind: 'postgres', target: spec, describe: redactUrl(spec) };
  if (spec && /^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new Error(`--store ${redactUrl(spec)}: only postgresql:// URLs or a SQLite file path are stores`);
  }
  const file = spec ? path.resolve(spec) : path.join(dataDir, 'hearth.db');
  return { kind: 'sqlite', target: file, describe: file };
}

export async function openStore(spec: string | undefined, dataDir: string, warn: (message: string) => void): Promise<{ db: Db; store: StoreChoice }> {
  const choice = chooseStore(spec, dataDir);
  const db = choice.kind === 'postgres' ? await openPostgres(choice.target, { warn }) : await openSqlite(choice.target);
  return { db, store: { kind: choice.kind, describe: choice.describe } };
}
