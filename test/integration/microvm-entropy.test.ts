/**
 * Clones of one microVM template must not share their random numbers. Every
 * VM of one (image, shape) is restored from the same memory snapshot, so
 * its kernel's CRNG starts in the same state; the guest kernel (Debian's
 * 6.1 cloud kernel) has no VM generation ID to notice the clone. What the
 * launcher does at identity — credit fresh host entropy and force a CRNG
 * reseed — is what makes two clones differ. Real QEMU (TCG here), a real
 * bridge and taps, in the test run's network namespace.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { MicrovmDriver } from '../../src/host/drivers/microvm/index.ts';
import { ensureGuestKernel } from '../../src/host/drivers/microvm/boot-media/kernel.ts';
import type { SandboxSpec } from '../../src/host/drivers/driver.ts';
import { ensureAgentDrive, resolveImage } from '../../src/host/images/index.ts';
import { HostNetwork } from '../../src/host/network/host-network.ts';
import { slotFor, type NetworkPlan } from '../../src/host/network/slot.ts';
import { needsRoot } from '../helpers/root.ts';

const tag = `e${randomBytes(2).toString('hex').slice(0, 3)}`;
const plan: NetworkPlan = { bridge: `hb${tag}`, subnet: `10.${150 + (randomBytes(1)[0]! % 50)}.${randomBytes(1)[0]}.0/24`, linkPrefix: tag };
let tmp: string;
let network: HostNetwork;
let driver: MicrovmDriver;
const specs: SandboxSpec[] = [];
let skipReason: string | false = needsRoot;

function exec(spec: SandboxSpec, script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: spec.slot.ip, port: spec.agentPort, path: '/exec', method: 'POST', agent: false, timeout: 60_000,
      headers: { authorization: `Bearer ${spec.agentSecret}`, 'content-type': 'application/json' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text}`));
        resolve(String((JSON.parse(text) as { stdout?: string }).stdout ?? ''));
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(JSON.stringify({ cmd: ['sh', '-c', script] }));
  });
}

before(async () => {
  if (skipReason) return;
  try {
    await ensureGuestKernel({ offline: true });
  } catch (e) {
    skipReason = `no guest kernel: run hearth setup (${(e as Error).message})`;
    return;
  }
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), `hearth-${tag}-`));
  network = new HostNetwork(plan, path.join(tmp, 'net'));
  await network.ensure();
  driver = new MicrovmDriver({ network, runDir: path.join('/run/hearth', `it-${tag}`), workspacesRoot: path.join(tmp, 'workspaces'), instance: plan.bridge });
  const agent = await ensureAgentDrive({});
  const image = await resolveImage('debian-12', {});
  for (const n of [11, 12]) {
    const workspaceId = `ws_${tag}${n}`;
    specs.push({
      workspaceId, generation: 1, hostname: `clone-${n}`, image, agent,
      agentSecret: randomBytes(24).toString('hex'), agentPort: 9990, cpus: 1, memoryMb: 256, diskSizeMb: 1024, pidsLimit: 256,
      slot: slotFor(plan, n), dir: path.join(tmp, 'workspaces', workspaceId),
    });
  }
});

after(async () => {
  if (!driver) return;
  for (const spec of specs) await driver.destroy(spec).catch(() => undefined);
  await driver.teardown().catch(() => undefined);
  await network.teardown().catch(() => undefined);
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.rm(path.join('/run/hearth', `it-${tag}`), { recursive: true, force: true });
});

test('two clones of one template draw different random numbers from their first command', { skip: skipReason }, async (t) => {
  if (skipReason) return t.skip(String(skipReason));
  // One after the other: the second is a restore of the template the first one made.
  for (const spec of specs) await driver.run(spec);
  // The same first command in each, so a shared CRNG state would give the same bytes.
  const script = 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"';
  const [a, b] = [await exec(specs[0]!, script), await exec(specs[1]!, script)];
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.match(b, /^[0-9a-f]{64}$/);
  assert.notEqual(a, b, 'two clones of one template produced the same random bytes');
});

test('the launcher credits the host seed and reseeds: the guest says its CRNG was reseeded at identity', { skip: skipReason }, async (t) => {
  if (skipReason) return t.skip(String(skipReason));
  for (const spec of specs) {
    const log = await fs.readFile(path.join(spec.dir, 'console.log'), 'utf8');
    assert.match(log, /"msg":"entropy credited and CRNG reseeded"/, `${spec.workspaceId}: the launcher did not reseed`);
  }
});
