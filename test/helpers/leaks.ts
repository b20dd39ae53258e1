/**
 * Leak checks as assertions: what a Hearth instance may have left on the
 * host, found by its unique names (link prefix, data dir, bridge).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';

const run = promisify(execFile);

async function lines(cmd: string, args: string[]): Promise<string[]> {
  try {
    const { stdout } = await run(cmd, args);
    return stdout.split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * The pooled sandboxes (src/control/warm-pool) of a hearthd that still runs:
 * they are its own, not a test's leftovers, so the check looks past them.
 * Once hearthd has stopped, nothing is excused (a graceful stop removes them).
 */
async function pooledOfRunningHearth(o: { dataDir: string; linkPrefix: string; bridge: string }, ps: string[]): Promise<{ ids: string[]; links: Set<string>; ips: Set<string> }> {
  const none = { ids: [], links: new Set<string>(), ips: new Set<string>() };
  if (!ps.some((l) => l.includes(o.dataDir) && l.includes('hearth.mjs serve'))) return none;
  let rows: { id: string; slot_index: number }[];
  try {
    const db = new Database(path.join(o.dataDir, 'hearth.db'), { readonly: true, fileMustExist: true });
    try {
      rows = db.prepare('SELECT id, slot_index FROM warm_pool').all() as typeof rows;
    } finally {
      db.close();
    }
  } catch {
    return none; // no store, or one from before warm pools
  }
  // The slot's address: the bridge's subnet base + 2 + index (src/host/network/slot.ts).
  const bridgeAddr = (await lines('ip', ['-4', '-o', 'addr', 'show', 'dev', o.bridge]))[0]?.match(/inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/);
  const ips = new Set<string>();
  if (bridgeAddr) {
    const toInt = (ip: string) => ip.split('.').reduce((n, x) => n * 256 + Number(x), 0);
    const bits = Number(bridgeAddr[2]);
    const base = toInt(bridgeAddr[1]!) & (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0);
    for (const r of rows) {
      const n = (base >>> 0) + 2 + r.slot_index;
      ips.add([24, 16, 8, 0].map((sh) => (n >>> sh) & 255).join('.'));
    }
  }
  return { ids: rows.map((r) => r.id), links: new Set(rows.map((r) => `${o.linkPrefix}${r.slot_index}`)), ips };
}

export async function leftovers(o: { dataDir: string; linkPrefix: string; bridge: string }): Promise<string[]> {
  const ps = await lines('ps', ['-eo', 'pid=,args=']);
  const pooled = await pooledOfRunningHearth(o, ps);
  const ofPool = (text: string) => pooled.ids.some((id) => text.includes(id));
  const found = await leftoversIgnoring(o, ps, pooled.links, pooled.ips);
  return found.filter((f) => !ofPool(f));
}

async function leftoversIgnoring(o: { dataDir: string; linkPrefix: string; bridge: string }, ps: string[], pooledLinks: Set<string>, pooledIps: Set<string>): Promise<string[]> {
  const found: string[] = [];
  const perWorkspace = new RegExp(`^${o.linkPrefix}\\d+$`);
  for (const l of await lines('ip', ['-o', 'link', 'show'])) {
    const name = l.split(':')[1]?.trim().split('@')[0];
    if (name && perWorkspace.test(name) && !pooledLinks.has(name)) found.push(`link ${name}`);
  }
  for (const l of await lines('ip', ['netns', 'list'])) {
    const name = l.split(' ')[0]!;
    if (perWorkspace.test(name) && !pooledLinks.has(name)) found.push(`netns ${name}`);
  }
  const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
  for (const l of mounts.split('\n')) if (l.includes(o.dataDir)) found.push(`mount ${l.split(' ')[4]}`);
  // A workspace disk left attached (container disks are loop-mounted images in the data dir).
  for (const l of await lines('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'])) if (l.includes(o.dataDir)) found.push(`loop ${l.trim()}`);
  // hearthd itself is not a leak while it runs, nor the edge's HAProxy it supervises (src/host/proxy/);
  // anything else naming the data dir is, and so is either of them once hearthd has stopped.
  const hearthRuns = ps.some((l) => l.includes(o.dataDir) && l.includes('hearth.mjs serve'));
  const ownProxy = (l: string) => hearthRuns && / -f \S*\/edge\/haproxy\/haproxy\.cfg\b/.test(l);
  for (const l of ps) {
    if (l.includes(o.dataDir) && !l.includes('ps -eo') && !l.includes('hearth.mjs serve') && !ownProxy(l)) found.push(`process ${l.trim()}`);
  }
  const tableDump = (await lines('nft', ['list', 'table', 'inet', `hearth_${o.bridge}`])).join('\n');
  for (const m of tableDump.matchAll(/elements = \{([^}]*)\}/g)) {
    const left = m[1]!.split(',').map((e) => e.trim()).filter((e) => {
      const first = e.split(' ')[0]!.replace(/"/g, '');
      return e && !pooledIps.has(first) && !pooledLinks.has(first);
    });
    if (left.length) found.push(`nft set elements ${left.join(', ')}`);
  }
  for (const controller of ['memory', 'pids', 'cpu,cpuacct']) {
    const dir = `/sys/fs/cgroup/${controller}/hearth`;
    for (const inst of await fs.readdir(dir).catch(() => [] as string[])) {
      for (const ws of await fs.readdir(`${dir}/${inst}`, { withFileTypes: true }).catch(() => [])) {
        if (ws.isDirectory() && inst.includes(o.linkPrefix)) found.push(`cgroup ${controller}/hearth/${inst}/${ws.name}`);
      }
    }
  }
  return found;
}
