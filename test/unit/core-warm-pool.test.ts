/** The pure part of warm pools (src/core/warm-pool.ts): keys, the neutral config, sizing from demand within the cap. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEMAND_WINDOW_MS, DemandTracker, defaultPoolCap, nextToFill, poolKey, poolShape, pooledConfig, surplus } from '../../src/core/warm-pool.ts';
import { defaultConfig } from '../../src/core/workspace-spec.ts';

const cfg = (over: Record<string, unknown> = {}) => ({ ...defaultConfig(), ...over });

test('shapes: what fixes a sandbox at start is in the key; what a claim applies is not', () => {
  const base = poolShape('container', 'debian-12', 'sha256:a', cfg())!;
  const same = poolShape('container', 'debian-12', 'sha256:a', cfg({ env: ['A=1'], allow_internet: false, ingress: ['10.0.0.2'], ttl_seconds: 60 }))!;
  assert.equal(poolKey(base), poolKey(same), 'env, network and TTL are applied at claim');
  for (const other of [
    poolShape('container', 'debian-12', 'sha256:b', cfg()), poolShape('container', 'node-20', 'sha256:a', cfg()),
    poolShape('container', 'debian-12', 'sha256:a', cfg({ cpus: 2 })), poolShape('container', 'debian-12', 'sha256:a', cfg({ memory_mb: 1024 })),
    poolShape('container', 'debian-12', 'sha256:a', cfg({ disk_size_mb: 8192 })), poolShape('container', 'debian-12', 'sha256:a', cfg({ pids_limit: 200 })),
    poolShape('container', 'debian-12', 'sha256:a', cfg({ allow_ptrace: true })),
  ]) assert.notEqual(poolKey(other!), poolKey(base));
  assert.equal(poolShape('container', 'snapshot:snap_1', 'x', cfg()), null, 'a snapshot is someone\'s data: never pooled');
  assert.equal(poolShape('microvm', 'debian-12', 'x', cfg()), null);
});

test('a pooled sandbox runs air-gapped with the shape\'s limits and nothing of anyone', () => {
  const c = pooledConfig(poolShape('container', 'debian-12', 'd', cfg({ cpus: 2, memory_mb: 300, env: ['SECRET=1'], egress: ['example.com'], pids_limit: 128 }))!);
  assert.deepEqual([c.cpus, c.memory_mb, c.pids_limit, c.allow_internet, c.env, c.egress, c.ingress], [2, 300, 128, false, [], [], []]);
});

test('sizing: at least one per key with demand, the last minute\'s creates, never past the cap, none once quiet', () => {
  const d = new DemandTracker();
  assert.equal(d.target('k', 0, 4), 0);
  d.record('k', 1000);
  assert.equal(d.target('k', 1000, 4), 1);
  for (let i = 0; i < 9; i++) d.record('k', 2000 + i);
  assert.equal(d.target('k', 3000, 4), 4, 'capped');
  assert.equal(d.target('k', 3000, 0), 0, 'cap 0: pools off');
  assert.equal(d.target('k', 2000 + 61_000, 20), 1, 'a minute later: the floor of one while demand lasts');
  assert.equal(d.target('k', 3000 + DEMAND_WINDOW_MS, 4), 0, 'gone quiet');
  assert.deepEqual(d.keys(3000 + DEMAND_WINDOW_MS), []);
});

test('refill order: the widest gap first, the total within the cap; surplus once demand falls', () => {
  const held: Record<string, number> = { a: 1, b: 0 };
  const target: Record<string, number> = { a: 3, b: 1 };
  assert.equal(nextToFill(['a', 'b'], (k) => held[k]!, (k) => target[k]!, 4), 'a');
  assert.equal(nextToFill(['a', 'b'], (k) => held[k]!, (k) => target[k]!, 1), null, 'the cap counts every key');
  assert.equal(nextToFill(['a'], () => 3, () => 3, 8), null);
  assert.deepEqual(surplus(['a', 'b'], (k) => held[k]!, () => 0), [{ key: 'a', extra: 1 }]);
});

test('the default cap follows host memory within 1..4', () => {
  assert.equal(defaultPoolCap(2 * 1024 ** 3), 1);
  assert.equal(defaultPoolCap(24 * 1024 ** 3), 3);
  assert.equal(defaultPoolCap(512 * 1024 ** 3), 4);
});
