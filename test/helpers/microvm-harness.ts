/**
 * The microVM driver on its own, for integration tests: real QEMU (TCG
 * here), a bridge and taps of the test's own plan inside the test run's
 * network namespace, and an agent call that uses a fresh connection each
 * time (a restored or rebooted guest does not know the pooled sockets of
 * the one before). `close` leaves nothing: VMs, taps, tables, dirs.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { MicrovmDriver } from '../../src/host/drivers/microvm/index.ts';
import { ensureGuestKernel } from '../../src/host/drivers/microvm/boot-media/kernel.ts';
import type { SandboxSpec } from '../../src/host/drivers/driver.ts';
import { HostNetwork } from '../../src/host/network/host-network.ts';
import type { NetworkPlan } from '../../src/host/network/slot.ts';

export interface VmHarness {
  tag: string;
  plan: NetworkPlan;
  tmp: string;
  network: HostNetwork;
  driver: MicrovmDriver;
  /** Destroy `specs`, then remove the driver's and the network's state and the temp dirs. */
  close(specs: SandboxSpec[]): Promise<void>;
}

/** A harness, or why the host cannot run one (no guest kernel: `hearth setup`). */
export async function openVmHarness(letter: string): Promise<VmHarness | { skip: string }> {
  try {
    await ensureGuestKernel({ offline: true });
  } catch (e) {
    return { skip: `no guest kernel: run hearth setup (${(e as Error).message})` };
  }
  const tag = `${letter}${randomBytes(2).toString('hex').slice(0, 3)}`;
  const plan: NetworkPlan = { bridge: `hb${tag}`, subnet: `10.${150 + (randomBytes(1)[0]! % 50)}.${randomBytes(1)[0]}.0/24`, linkPrefix: tag };
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), `hearth-${tag}-`));
  const runDir = path.join('/run/hearth', `it-${tag}`);
  const network = new HostNetwork(plan, path.join(tmp, 'net'));
  await network.ensure();
  const driver = new MicrovmDriver({ network, runDir, workspacesRoot: path.join(tmp, 'workspaces'), instance: plan.bridge });
  return {
    tag, plan, tmp, network, driver,
    async close(specs) {
      for (const spec of specs) await driver.destroy(spec).catch(() => undefined);
      await driver.teardown().catch(() => undefined);
      await network.teardown().catch(() => undefined);
      await fs.rm(tmp, { recursive: true, force: true });
      await fs.rm(runDir, { recursive: true, force: true });
    },
  };
}

/** One agent request on a fresh connection; rejects on a status other than 200. */
export function agentCall(spec: SandboxSpec, method: string, p: string, body?: unknown): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: spec.slot.ip, port: spec.agentPort, path: p, method, agent: false, timeout: 60_000,
      headers: { authorization: `Bearer ${spec.agentSecret}`, 'content-type': 'application/json' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          const json = JSON.parse(text) as Record<string, any>;
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${text}`));
          else resolve(json);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
