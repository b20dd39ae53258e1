/**
 * The identity protocol both ends of a microVM share (src/core/vm-identity.ts):
 * what the host's identityFor sends is what the guest launcher accepts, a
 * malformed line is refused, and the netmask the launcher configures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { netmaskOf, validIdentity } from '../../src/core/vm-identity.ts';
import { identityFor } from '../../src/host/drivers/microvm/identity.ts';
import type { SandboxSpec } from '../../src/host/drivers/driver.ts';
import { slotFor } from '../../src/host/network/slot.ts';

const spec = {
  workspaceId: 'ws_1', generation: 1, hostname: 'box', agentSecret: 's3cret', agentPort: 9990, cpus: 1, memoryMb: 512, diskSizeMb: 4096, pidsLimit: 1024,
  image: { id: 'debian-12', ref: 'hearth/debian:12', layers: ['/l'], env: ['PATH=/usr/bin'], workingDir: '/', user: 'root', digest: 'sha256:x' },
  agent: { dir: '/a', hash: 'h' }, slot: slotFor({ bridge: 'hearth0', subnet: '10.88.0.0/16', linkPrefix: 'hth' }, 5), dir: '/d',
} as SandboxSpec;

test('the identity the host sends is one the guest accepts, with or without workdir', () => {
  const sent = JSON.parse(JSON.stringify(identityFor(spec, ['192.0.2.53'], 1700000000000, 'c2VlZA=='))) as Record<string, unknown>;
  assert.equal(validIdentity(sent), true);
  const { workdir: _workdir, ...older } = sent;
  assert.equal(validIdentity(older), true, 'hosts older than the workdir field');
});

test('a malformed identity is refused', () => {
  const good = JSON.parse(JSON.stringify(identityFor(spec, [], 1, 'c2VlZA=='))) as Record<string, unknown>;
  for (const [field, value] of [['t', 'waiting'], ['secret', ''], ['ip', '10.88.0'], ['gateway', 'x'], ['mac', '02:48:0A:58:00:07'], ['prefix', 16.5], ['port', '9990'], ['hostname', 'a b'], ['env', 'PATH=/'], ['now', '1'], ['seed', 1]] as const) {
    assert.equal(validIdentity({ ...good, [field]: value }), false, `${field}: ${JSON.stringify(value)}`);
  }
});

test('netmaskOf: a prefix as a dotted netmask', () => {
  assert.equal(netmaskOf(24), '255.255.255.0');
  assert.equal(netmaskOf(16), '255.255.0.0');
  assert.equal(netmaskOf(32), '255.255.255.255');
});
