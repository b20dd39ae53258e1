/**
 * Leak checks as assertions: what a Hearth instance may have left on the
 * host, found by its unique names (link prefix, data dir, bridge).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';

const run = promisify(execFile);

async function lines(cmd: string, args: string[]): Promise<string[]> {
  try {
    const { stdout } = await run(cmd, args);
    return stdout.split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

export async function leftovers(o: { dataDir: string; linkPrefix: string; bridge: string }): Promise<string[]> {
  const found: string[] = [];
  const perWorkspace = new RegExp(`^${o.linkPrefix}\\d+$`);
  for (const l of await lines('ip', ['-o', 'link', 'show'])) {
    const name = l.split(':')[1]?.trim().split('@')[0];
    if (name && perWorkspace.test(name)) found.push(`link ${name}`);
  }
  for (const l of await lines('ip', ['netns', 'list'])) {
    const name = l.split(' ')[0]!;
    if (perWorkspace.test(name)) found.push(`netns ${name}`);
  }
  const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
  for (const l of mounts.split('\n')) if (l.includes(o.dataDir)) found.push(`mount ${l.split(' ')[4]}`);
  // A workspace disk left attached (container disks are loop-mounted images in the data dir).
  for (const l of await lines('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'])) if (l.includes(o.dataDir)) found.push(`loop ${l.trim()}`);
  for (const l of await lines('ps', ['-eo', 'pid=,args='])) {
    // hearthd itself is not a leak while it runs; anything else naming the data dir is.
    if (l.includes(o.dataDir) && !l.includes('ps -eo') && !l.includes('hearth.mjs serve')) found.push(`process ${l.trim()}`);
  }
  const tableDump = (await lines('nft', ['list', 'table', 'inet', `hearth_${o.bridge}`])).join('\n');
  for (const m of tableDump.matchAll(/elements = \{([^}]*)\}/g)) {
    if (m[1]!.trim()) found.push(`nft set elements ${m[1]!.trim().replace(/\s+/g, ' ')}`);
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
