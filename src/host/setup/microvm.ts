/**
 * `hearth setup`, microVM part: the guest kernel (Debian's cloud kernel,
 * apt-verified), Hearth's initramfs, the agent disk, a base disk per built
 * image at the default disk size, and — unless told not to — a template per
 * image at the default resources, so the first workspace already restores
 * instead of booting cold. All keyed by content hash: a second run logs
 * CACHED and costs a few hundred ms.
 */
import { AGENT_PORT } from '../../core/agent-protocol.ts';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_RESOURCES } from '../../core/workspace-spec.ts';
import { MicrovmDriver } from '../drivers/microvm/driver.ts';
import { ensureVmArtifacts } from '../drivers/microvm/boot-media/artifacts.ts';
import { ensureBaseDisk } from '../drivers/microvm/boot-media/disks.ts';
import { ensureGuestKernel } from '../drivers/microvm/boot-media/kernel.ts';
import { resolveImage } from '../images/index.ts';
import type { AgentDrive } from '../images/types.ts';
import { HostNetwork } from '../network/host-network.ts';
import { DEFAULT_NETWORK_PLAN, slotFor } from '../network/slot.ts';

export interface MicrovmSetupResult {
  kernel: string;
  initramfs: string;
  agentDisk: string;
  baseDisks: string[];
  templates: string[];
  accel: string;
}

export interface MicrovmSetupOptions {
  artifactsDir: string;
  agent: AgentDrive;
  images: string[];
  templates: boolean;
  log: (l: string) => void;
}

export async function setupMicrovm(o: MicrovmSetupOptions): Promise<MicrovmSetupResult> {
  const kernel = await ensureGuestKernel({ artifactsDir: o.artifactsDir, log: o.log });
  const arts = await ensureVmArtifacts(o.agent, { artifactsDir: o.artifactsDir, log: o.log });
  const out: MicrovmSetupResult = { kernel: `${kernel.package} ${kernel.version}`, initramfs: arts.initramfs, agentDisk: arts.agentDisk, baseDisks: [], templates: [], accel: 'tcg' };
  const runDir = path.join(os.tmpdir(), `hearth-setup-vm-${process.pid}`);
  // Templates need no network: their NIC is a tap QEMU makes and that is on no bridge.
  const driver = new MicrovmDriver({
    network: new HostNetwork(DEFAULT_NETWORK_PLAN, path.join(runDir, 'net')), runDir, workspacesRoot: runDir,
    artifactsDir: o.artifactsDir, log: (m, f) => o.log(`${m}${f ? ` ${JSON.stringify(f)}` : ''}`),
  });
  try {
    out.accel = (await driver.accel()).accel;
    await buildPerImage(o, driver, out, runDir);
  } finally {
    // Only sockets and pid files of finished builds live here.
    await fs.rm(runDir, { recursive: true, force: true });
  }
  return out;
}

/** A base disk per image and, unless told not to, its template at the default resources. */
async function buildPerImage(o: MicrovmSetupOptions, driver: MicrovmDriver, out: MicrovmSetupResult, runDir: string): Promise<void> {
  for (const id of o.images) {
    const image = await resolveImage(id, { artifactsDir: o.artifactsDir });
    out.baseDisks.push((await ensureBaseDisk(image, DEFAULT_RESOURCES.disk_size_mb, { artifactsDir: o.artifactsDir, log: o.log })).file);
    if (!o.templates) continue;
    const t0 = Date.now();
    const dir = await driver.ensureTemplate({
      workspaceId: 'template', generation: 0, hostname: 'template', image, agent: o.agent, agentSecret: 'unused', agentPort: AGENT_PORT,
      cpus: DEFAULT_RESOURCES.cpus, memoryMb: DEFAULT_RESOURCES.memory_mb, diskSizeMb: DEFAULT_RESOURCES.disk_size_mb, pidsLimit: 1024,
      slot: slotFor(DEFAULT_NETWORK_PLAN, 0), dir: path.join(runDir, 'template'),
    });
    o.log(`template ${id}: ${path.basename(dir)} (${Date.now() - t0} ms)`);
    out.templates.push(dir);
  }
}
