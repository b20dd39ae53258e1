/**
 * `hearth hosts` — the store's hosts, read from the store itself (so it works
 * with hearthd down, and on any machine that can reach a PostgreSQL store):
 *   list               name, status, health, heartbeat age, load / capacity
 *   drain NAME         no new placements on NAME (what runs there keeps running)
 *   undrain NAME       take new placements again
 * Results go to stdout (JSON with --json).
 */
import path from 'node:path';
import { ArgError } from '../args/listen.ts';
import { parseFlags } from '../args/parse.ts';
import { openStore } from '../../store/open.ts';
import { HostsService, type HostReport } from '../../control/hosts.ts';

const USAGE = [
  'usage: hearth hosts [list] [--json] [--store postgresql://… | --data-dir DIR]',
  '       hearth hosts drain NAME [--json] [--store …]',
  '       hearth hosts undrain NAME [--json] [--store …]',
  '  the store: --store, else HEARTH_STORE, else DIR/hearth.db (default /var/lib/hearth/data)',
  '  example: hearth hosts --store postgresql://hearth@db.internal/hearth',
].join('\n');

function table(hosts: HostReport[]): string {
  const head = ['NAME', 'STATUS', 'HEALTH', 'HEARTBEAT', 'WORKSPACES', 'CPUS', 'MEMORY MB', 'DISK MB', 'DRIVERS'];
  const rows = hosts.map((h) => [
    h.name, h.status, h.health, `${Math.round(h.heartbeat_age_ms / 1000)}s ago`, String(h.load.workspaces),
    `${h.load.cpus}/${h.capacity.cpus * h.overcommit.cpu}`, `${h.load.memory_mb}/${Math.floor(h.capacity.memory_mb * h.overcommit.memory)}`,
    `${h.load.disk_mb}/${Math.floor(h.capacity.disk_mb * h.overcommit.disk)}`, h.drivers.join(','),
  ]);
  const widths = head.map((_, i) => Math.max(head[i]!.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export async function hostsCommand(argv: string[]): Promise<number> {
  const positional = argv.filter((a, i) => !a.startsWith('--') && !['--store', '--data-dir'].includes(argv[i - 1] ?? ''));
  const f = parseFlags(argv.filter((a) => !positional.includes(a)), { json: 'boolean', store: 'string', 'data-dir': 'string' }, USAGE);
  const [verb = 'list', name, extra] = positional;
  if (extra !== undefined) throw new ArgError(`unexpected argument ${JSON.stringify(extra)}`, USAGE);
  if (!['list', 'drain', 'undrain'].includes(verb)) throw new ArgError(`unknown hosts command ${JSON.stringify(verb)}`, USAGE);
  if (verb !== 'list' && !name) throw new ArgError(`hosts ${verb} needs a host NAME`, USAGE);
  const dataDir = path.resolve(String(f['data-dir'] ?? '/var/lib/hearth/data'));
  const spec = f.store !== undefined ? String(f.store) : process.env.HEARTH_STORE || undefined;
  const { db } = await openStore(spec, dataDir, (m) => process.stderr.write(`hearth hosts: ${m}\n`));
  try {
    const hosts = new HostsService(db);
    if (verb === 'list') {
      const list = await hosts.list();
      process.stdout.write(f.json ? JSON.stringify({ hosts: list }, null, 2) + '\n' : list.length ? table(list) : 'no hosts registered on this store\n');
    } else {
      const h = await hosts.setDraining(name!, verb === 'drain');
      process.stdout.write(f.json ? JSON.stringify({ host: h }, null, 2) + '\n' : `${h.name}: ${h.status}\n`);
    }
    return 0;
  } finally {
    await db.destroy();
  }
}
