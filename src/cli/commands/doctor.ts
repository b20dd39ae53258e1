/** `hearth doctor` — which isolation drivers this host can run, and why not; what setup has built. */
import os from 'node:os';
import { parseFlags } from '../args/parse.ts';
import { HostNetwork, ipForwardEnabled } from '../../host/network/host-network.ts';
import { DEFAULT_NETWORK_PLAN } from '../../host/network/slot.ts';
import { ContainerDriver } from '../../host/drivers/container/driver.ts';
import { MicrovmDriver } from '../../host/drivers/microvm/driver.ts';
import { chooseDriver } from '../../host/local-host.ts';
import { listCatalog } from '../../host/images/index.ts';
import type { Capabilities } from '../../host/drivers/driver.ts';
import { probeHaproxy } from '../../host/proxy/probe.ts';

export async function doctorCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { json: 'boolean', 'artifacts-dir': 'string' }, 'usage: hearth doctor [--json] [--artifacts-dir DIR]');
  const artifactsDir = f['artifacts-dir'] ? String(f['artifacts-dir']) : undefined;
  const runDir = os.tmpdir();
  const container = new ContainerDriver({ network: new HostNetwork(DEFAULT_NETWORK_PLAN, runDir), runDir, workspacesRoot: runDir });
  const caps: Capabilities[] = [
    await container.probe(),
    // The real KVM boot probe (cached per boot in /run/hearth): says KVM or TCG, and why.
    await new MicrovmDriver({ network: new HostNetwork(DEFAULT_NETWORK_PLAN, runDir), runDir, workspacesRoot: runDir, artifactsDir }).probe(),
  ];
  let chosen: string;
  try {
    const c = chooseDriver('auto', caps);
    chosen = `${c.driver} (${c.reason})`;
  } catch (err) {
    chosen = `none: ${(err as Error).message}`;
  }
  const images = await listCatalog({ artifactsDir }).catch(() => []);
  const edge = await probeHaproxy();
  const report = { drivers: caps, auto: chosen, ip_forward: await ipForwardEnabled().catch(() => false), edge_proxy: edge, images: images.map((i) => ({ id: i.id, available: i.available, versions: i.versions })) };
  if (f.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } else {
    const lines = ['isolation drivers:'];
    for (const c of caps) lines.push(`  ${c.available ? 'ok ' : 'no '} ${c.driver.padEnd(10)} ${c.reason}`);
    lines.push(`auto picks: ${chosen}`, '', 'edge proxy:', `  ${edge.available ? 'ok ' : 'no '} ${edge.binary} ${edge.reason}`, '', 'images:');
    for (const i of report.images) lines.push(`  ${i.available ? 'built  ' : 'missing'} ${i.id.padEnd(12)} ${Object.entries(i.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (report.images.some((i) => !i.available)) lines.push('', 'missing images: run `hearth setup`');
    process.stdout.write(lines.join('\n') + '\n');
  }
  return caps.some((c) => c.available) ? 0 : 1;
}
