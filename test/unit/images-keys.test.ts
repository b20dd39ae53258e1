import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson, hashKey } from '../../src/host/images/hash.ts';
import { debianLayerKey, nodeLayerKey } from '../../src/host/images/rootfs.ts';
import { agentDriveKey, type TreeEntry } from '../../src/host/images/agent-drive.ts';
import { imageDigest } from '../../src/host/images/store.ts';
import { LAYERS } from '../../src/host/images/catalog.ts';
import { shortKey } from '../../src/host/images/paths.ts';

const debian = LAYERS['debian-12'];
if (!debian || debian.kind !== 'debian') throw new Error('catalog has no debian-12 layer');

test('canonical JSON sorts keys at every level and keeps array order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}');
  assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
});

test('hashKey is sha256 over the canonical JSON (pinned)', () => {
  // sha256('{"a":1}')
  assert.equal(hashKey({ a: 1 }), 'sha256:015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862');
  assert.equal(shortKey(hashKey({ a: 1 })), '015abd7f5cc57a2d');
});

test('a Debian layer key ignores package order, duplicates and mirror URLs', () => {
  const ids = ['bookworm/main', 'bookworm-updates/main', 'bookworm-security/main'];
  const k = debianLayerKey(debian, ids);
  assert.equal(debianLayerKey({ ...debian, packages: [...debian.packages].reverse().concat(debian.packages) }, ids), k);
  assert.equal(debianLayerKey(debian, [...ids].reverse()), k);
  assert.match(k, /^sha256:[0-9a-f]{64}$/);
});

test('a Debian layer key changes with every real input', () => {
  const ids = ['bookworm/main'];
  const k = debianLayerKey(debian, ids);
  const variants = [
    debianLayerKey({ ...debian, packages: [...debian.packages, 'curl'] }, ids),
    debianLayerKey({ ...debian, suite: 'trixie' }, ids),
    debianLayerKey(debian, ['bookworm/main', 'bookworm/contrib']),
    debianLayerKey(debian, ids, 'arm64'),
  ];
  for (const v of variants) assert.notEqual(v, k);
  assert.equal(new Set(variants).size, variants.length);
});

test('a node layer key follows its base, node and npm', () => {
  const node = { version: '20.20.2', integrity: 'sha512-a' };
  const npm = { version: '10.9.9', integrity: 'sha512-b' };
  const k = nodeLayerKey('sha256:base', node, npm);
  assert.notEqual(nodeLayerKey('sha256:other', node, npm), k);
  assert.notEqual(nodeLayerKey('sha256:base', { ...node, integrity: 'sha512-c' }, npm), k);
  assert.notEqual(nodeLayerKey('sha256:base', node, { ...npm, version: '10.9.8' }), k);
  assert.equal(nodeLayerKey('sha256:base', { integrity: 'sha512-a', version: '20.20.2' }, npm), k);
});

test('the agent drive key changes with the bundle, tini, libs and node, not with lib order', () => {
  const bundle: TreeEntry[] = [{ path: 'agent.mjs', type: 'file', mode: 0o644, content: 'aa' }];
  const libs = [{ name: 'libc.so.6', sha256: '1' }, { name: 'ld-linux-x86-64.so.2', sha256: '2' }];
  const base = { node: { version: '20.20.2', integrity: 'sha512-x' }, tini: 't', libs, bundle };
  const k = agentDriveKey(base);
  assert.equal(agentDriveKey({ ...base, libs: [...libs].reverse() }), k);
  assert.notEqual(agentDriveKey({ ...base, bundle: [{ ...bundle[0]!, content: 'ab' }] }), k);
  assert.notEqual(agentDriveKey({ ...base, bundle: [...bundle, { path: 'node_modules', type: 'dir', mode: 0o755 }] }), k);
  assert.notEqual(agentDriveKey({ ...base, tini: 'u' }), k);
  assert.notEqual(agentDriveKey({ ...base, libs: [{ name: 'libc.so.6', sha256: '3' }] }), k);
  assert.notEqual(agentDriveKey({ ...base, node: { version: '20.20.3', integrity: 'sha512-x' } }), k);
});

test('the image digest covers layer order and config', () => {
  const cfg = { env: ['A=1'], workingDir: '/root', user: 'root' };
  const d = imageDigest(['sha256:top', 'sha256:base'], cfg);
  assert.notEqual(imageDigest(['sha256:base', 'sha256:top'], cfg), d);
  assert.notEqual(imageDigest(['sha256:top', 'sha256:base'], { ...cfg, user: 'nobody' }), d);
  assert.notEqual(imageDigest(['sha256:top', 'sha256:base'], { ...cfg, env: ['A=2'] }), d);
});
