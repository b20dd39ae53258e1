/**
 * Starts a real `hearth serve` (the CLI, as users run it) with its own data
 * dir, bridge, subnet and link prefix, so instances never collide; stops it
 * and checks that nothing it created is left on the host.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { waitUntil } from './wait.ts';
import { leftovers } from './leaks.ts';
import { runDirFor } from '../../src/host/local-host.ts';
import { HostNetwork } from '../../src/host/network/host-network.ts';
import assert from 'node:assert/strict';
import { freshPostgresUrl, testDialect } from './store.ts';

export interface HearthInstance {
  dataDir: string;
  api: string;
  runtime: string;
  clientId: string;
  clientSecret: string;
  bridge: string;
  linkPrefix: string;
  subnet: string;
  proc: ChildProcess;
  logs: string[];
  /** Delete every workspace, stop hearthd, and assert nothing is left behind. */
  stop(): Promise<void>;
  /** kill -9 hearthd (workspaces keep running), run `whileDown`, and start it again on the same data dir. */
  crashAndRestart(whileDown?: () => Promise<void>): Promise<void>;
}

const repo = path.resolve(import.meta.dirname, '..', '..');

/**
 * The instance's parent cgroup (`hearth/<instance>` in every hierarchy) outlives hearthd like its
 * run dir. The workspaces' own cgroups inside it are checked by the leak check; the empty parent goes here.
 */
async function removeInstanceCgroups(instance: string): Promise<void> {
  for (const hierarchy of await fs.readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
    await fs.rmdir(path.join('/sys/fs/cgroup', hierarchy, 'hearth', instance)).catch(() => undefined);
  }
}

/** Tags and subnets handed out by this process: two instances of one test file never share either. */
const taken = new Set<string>();

function drawUnique(draw: () => string): string {
  for (;;) {
    const v = draw();
    if (!taken.has(v)) {
      taken.add(v);
      return v;
    }
  }
}

/**
 * `store`: where hearthd keeps its rows; default HEARTH_TEST_STORE (sqlite = the data dir's file,
 * postgres = a fresh database on the test process's throwaway cluster, passed as --store).
 */
export async function startHearth(opts: { driver?: string; extraArgs?: string[]; store?: 'sqlite' | 'postgres' | { url: string } } = {}): Promise<HearthInstance> {
  const store = opts.store ?? testDialect();
  const storeArgs = store === 'sqlite' ? [] : ['--store', store === 'postgres' ? await freshPostgresUrl() : store.url];
  const tag = drawUnique(() => 't' + randomBytes(2).toString('hex').slice(0, 3));
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `hearth-${tag}-`));
  const subnet = drawUnique(() => `10.${100 + (randomBytes(1)[0]! % 100)}.${randomBytes(1)[0]}.0/24`);
  const bridge = `hb${tag}`;
  const args = [
    path.join(repo, 'bin/hearth.mjs'), 'serve', '--data-dir', dataDir,
    '--bridge', bridge, '--subnet', subnet, '--link-prefix', tag, '--driver', opts.driver ?? 'container', ...storeArgs, ...(opts.extraArgs ?? []),
  ];
  const logs: string[] = [];
  let proc!: ChildProcess;
  let exited = false;
  const launch = async (listen: string[]) => {
    await fs.rm(path.join(dataDir, 'endpoints.json'), { force: true });
    // HEARTH_NODE_ARGS: extra node flags for hearthd (profiling a bench: "--cpu-prof --cpu-prof-dir=/tmp/prof").
    const nodeArgs = (process.env.HEARTH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    proc = spawn(process.execPath, [...nodeArgs, ...args, ...listen], { stdio: ['ignore', 'pipe', 'pipe'] });
    exited = false;
    proc.stdout!.on('data', (d) => logs.push(String(d)));
    proc.stderr!.on('data', (d) => logs.push(String(d)));
    proc.on('exit', () => { exited = true; });
    return waitUntil('hearth serve to write endpoints.json', async () => {
      if (exited) throw new Error(`hearth serve exited early:\n${logs.join('')}`);
      return JSON.parse(await fs.readFile(path.join(dataDir, 'endpoints.json'), 'utf8')) as { api: string; runtime: string };
    }, 60_000, 50).catch((err) => { proc.kill('SIGKILL'); throw new Error(`${err.message}\n${logs.join('').slice(-4000)}`); });
  };
  const endpoints = await launch(['--listen', '127.0.0.1:0', '--runtime-listen', '127.0.0.1:0']);
  if (storeArgs.length) await waitUntil('hearthd to log that it opened the PostgreSQL store', async () => /"store":"postgres"/.test(logs.join('')), 5_000);
  const creds = JSON.parse(await fs.readFile(path.join(dataDir, 'credentials.json'), 'utf8')) as { clientId: string; clientSecret: string };

  const inst: HearthInstance = {
    dataDir, api: endpoints.api, runtime: endpoints.runtime, ...creds, bridge, linkPrefix: tag, subnet, proc, logs,
    async crashAndRestart(whileDown) {
      proc.kill('SIGKILL');
      await waitUntil('hearthd to die', async () => exited, 10_000);
      await whileDown?.();
      // Same ports, so clients holding URLs keep working.
      const again = await launch(['--listen', new URL(endpoints.api).host, '--runtime-listen', new URL(endpoints.runtime).host]);
      inst.proc = proc;
      assert.equal(again.api, endpoints.api);
    },
    async stop() {
      const headers = { 'x-client-id': creds.clientId, 'x-client-secret': creds.clientSecret, 'content-type': 'application/json' };
      if (!exited) {
        const list = await (await fetch(`${endpoints.api}/workspace?limit=500`, { headers })).json() as { workspaces?: { id: string }[] };
        for (const ws of list.workspaces ?? []) await fetch(`${endpoints.api}/workspace/${ws.id}`, { method: 'DELETE', headers });
        proc.kill('SIGTERM');
        await waitUntil('hearthd to exit', async () => exited, 20_000);
      }
      const left = await leftovers({ dataDir, linkPrefix: tag, bridge });
      // The instance's own singletons go last, after the check of per-workspace state: its bridge and
      // nft tables (a later instance of the run must never find a bridge with its subnet or name),
      // its data dir, its volatile run dir and its parent cgroups.
      await new HostNetwork({ bridge, subnet, linkPrefix: tag }, path.join(runDirFor(dataDir), 'net')).teardown();
      await fs.rm(dataDir, { recursive: true, force: true });
      await fs.rm(runDirFor(dataDir), { recursive: true, force: true });
      await removeInstanceCgroups(bridge);
      if (left.length) throw new Error(`hearth left resources behind:\n  ${left.join('\n  ')}`);
    },
  };
  return inst;
}
