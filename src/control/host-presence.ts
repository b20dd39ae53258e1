/**
 * This hearthd as a host of its store: at start it registers what the
 * machine has (vCPUs, memory, the data dir's disk, the drivers that run
 * here, the images present) and adopts workspaces from before hosts
 * existed; then it heartbeats, refreshing the image list, until closed.
 * A host that stops heartbeating is down for every reader of the store
 * (HostsService, core/placement.ts).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import type { Logger } from 'pino';
import type { HostDriver } from '../host/host-driver.ts';
import type { HostsService } from './hosts.ts';

export const HEARTBEAT_MS = 5_000;

/** A host name from the machine's: lower-cased, anything else than [a-z0-9-] becomes '-'. */
export function defaultHostName(): string {
  const n = os.hostname().toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return n || 'host';
}

async function images(host: HostDriver): Promise<string[]> {
  return (await host.catalog()).filter((e) => e.available).map((e) => e.id);
}

export async function registerLocalHost(hosts: HostsService, host: HostDriver, opts: { name: string; dataDir: string; version: string | null; log: Logger }): Promise<{ stop(): void }> {
  const disk = await fs.statfs(opts.dataDir);
  const drivers = (await host.capabilities()).filter((c) => c.available).map((c) => c.driver);
  await hosts.register({
    name: opts.name, role: 'both', address: null, version: opts.version,
    capacity: { cpus: os.availableParallelism(), memoryMb: Math.floor(os.totalmem() / 2 ** 20), diskMb: Math.floor((disk.blocks * disk.bsize) / 2 ** 20) },
    drivers, images: await images(host),
  });
  const adopted = await hosts.adoptUnplaced(opts.name);
  opts.log.info({ host: opts.name, drivers, adopted }, 'host registered');
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    images(host).then((list) => hosts.heartbeat(opts.name, list))
      .catch((err) => opts.log.warn({ err }, 'heartbeat failed'))
      .finally(() => { busy = false; });
  }, HEARTBEAT_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
