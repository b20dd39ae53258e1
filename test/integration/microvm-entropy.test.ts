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
import path from 'node:path';
import type { SandboxSpec } from '../../src/host/drivers/driver.ts';
import { ensureAgentDrive, resolveImage } from '../../src/host/images/index.ts';
import { slotFor } from '../../src/host/network/slot.ts';
import { needsRoot } from '../helpers/root.ts';
import { agentCall, openVmHarness, type VmHarness } from '../helpers/microvm-harness.ts';

let vm: VmHarness | null = null;
const specs: SandboxSpec[] = [];
let skipReason: string | false = needsRoot;

const exec = async (spec: SandboxSpec, script: string) => String((await agentCall(spec, 'POST', '/exec', { cmd: ['sh', '-c', script] })).stdout ?? '');

before(async () => {
  if (skipReason) return;
  const opened = await openVmHarness('e');
  if ('skip' in opened) {
    skipReason = opened.skip;
    return;
  }
  vm = opened;
  const agent = await ensureAgentDrive({});
  const image = await resolveImage('debian-12', {});
  for (const n of [11, 12]) {
    const workspaceId = `ws_${vm.tag}${n}`;
    specs.push({
      workspaceId, generation: 1, hostname: `clone-${n}`, image, agent,
      agentSecret: randomBytes(24).toString('hex'), agentPort: 9990, cpus: 1, memoryMb: 256, diskSizeMb: 1024, pidsLimit: 256,
      slot: slotFor(vm.plan, n), dir: path.join(vm.tmp, 'workspaces', workspaceId),
    });
  }
});

after(async () => { await vm?.close(specs); });

test('two clones of one template draw different random numbers from their first command', { skip: skipReason }, async (t) => {
  if (skipReason || !vm) return t.skip(String(skipReason));
  // One after the other: the second is a restore of the template the first one made.
  for (const spec of specs) await vm.driver.run(spec);
  // The same first command in each, so a shared CRNG state would give the same bytes.
  const script = 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"';
  const [a, b] = [await exec(specs[0]!, script), await exec(specs[1]!, script)];
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.match(b, /^[0-9a-f]{64}$/);
  assert.notEqual(a, b, 'two clones of one template produced the same random bytes');
});

test('the launcher credits the host seed and reseeds: the guest says its CRNG was reseeded at identity', { skip: skipReason }, async (t) => {
  if (skipReason || !vm) return t.skip(String(skipReason));
  for (const spec of specs) {
    const log = await fs.readFile(path.join(spec.dir, 'console.log'), 'utf8');
    assert.match(log, /"msg":"entropy credited and CRNG reseeded"/, `${spec.workspaceId}: the launcher did not reseed`);
  }
});
