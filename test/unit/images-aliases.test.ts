import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SEED_ALIASES, findSeedAlias, planAlias } from '../../src/host/images/aliases.ts';
import { findRecipe } from '../../src/host/images/catalog.ts';
import { imageProcess, mergeEnv } from '../../src/host/images/process.ts';
import { overlayPathsInUse } from '../../src/host/images/gc.ts';
import { parseReference } from '../../src/host/images/oci/reference.ts';

test('every seed name maps to an official image, and offline only to an image that exists in the catalog', () => {
  assert.deepEqual(SEED_ALIASES.map((a) => a.name), ['node-20', 'python-3.12', 'go-1.22', 'rust-1', 'postgres-16']);
  for (const a of SEED_ALIASES) {
    const ref = parseReference(a.official);
    assert.equal(ref.registry, 'docker.io', a.name);
    assert.ok(ref.repository.startsWith('library/'), `${a.name}: an official image`);
    if (a.offline) assert.ok(findRecipe(a.offline), `${a.name} → ${a.offline} is a catalog image`);
    // A substitute whose version differs from the name must say so.
    if (a.offline && a.offline !== a.name) assert.ok(a.offlineNote, `${a.name} needs a note`);
  }
  assert.equal(findSeedAlias(' Python-3.12 ')?.offline, 'python-3.11');
});

test('alias plans follow the registry policy', () => {
  const py = findSeedAlias('python-3.12')!;
  const go = findSeedAlias('go-1.22')!;
  const offline = { dockerHub: false, catalogSource: 'auto' as const };
  const online = { dockerHub: true, catalogSource: 'auto' as const };
  const optIn = { offlineSubstitutes: true };
  // No source here ships CPython 3.12: offline it is refused, with what to configure, unless the operator opts in to 3.11.
  const refused = planAlias(py, offline);
  assert.equal(refused.use, 'unavailable');
  assert.match(refused.use === 'unavailable' ? refused.hint : '', /HEARTH_REGISTRY_MIRROR=<url>.*HEARTH_OFFLINE_SUBSTITUTES=1/);
  assert.deepEqual(planAlias(py, { ...offline, ...optIn }), { use: 'offline', id: 'python-3.11' });
  assert.deepEqual(planAlias(py, online), { use: 'official', ref: 'docker.io/library/python:3.12-slim-bookworm', fallback: null }, 'no silent 3.11 when the mirror fails');
  assert.deepEqual(planAlias(py, { ...online, ...optIn }), { use: 'official', ref: 'docker.io/library/python:3.12-slim-bookworm', fallback: 'python-3.11' });
  assert.deepEqual(planAlias(py, { dockerHub: true, catalogSource: 'registry', ...optIn }), { use: 'official', ref: 'docker.io/library/python:3.12-slim-bookworm', fallback: null }, 'registry mode never substitutes');
  assert.deepEqual(planAlias(py, { dockerHub: true, catalogSource: 'offline', ...optIn }), { use: 'offline', id: 'python-3.11' });
  // go-1.22, rust-1 and postgres-16 are catalog images of their own: built here, no substitute.
  assert.deepEqual(planAlias(go, offline), { use: 'offline', id: 'go-1.22' });
  assert.deepEqual(planAlias(findSeedAlias('rust-1')!, offline), { use: 'offline', id: 'rust-1' });
  assert.deepEqual(planAlias(findSeedAlias('postgres-16')!, offline), { use: 'offline', id: 'postgres-16' });
});

test("an image's default process follows Docker's rules", () => {
  const img = { env: ['PATH=/bin', 'A=1'], workingDir: '/app', user: 'app', entrypoint: ['/init', '--'], cmd: ['serve', '-v'] };
  assert.deepEqual(imageProcess(img), { argv: ['/init', '--', 'serve', '-v'], env: ['PATH=/bin', 'A=1'], cwd: '/app', user: 'app' });
  assert.deepEqual(imageProcess(img, { cmd: ['shell'] })!.argv, ['/init', '--', 'shell'], 'cmd replaces Cmd, keeps Entrypoint');
  assert.deepEqual(imageProcess(img, { entrypoint: ['/bin/sh'] })!.argv, ['/bin/sh'], 'entrypoint resets Cmd');
  assert.deepEqual(imageProcess(img, { entrypoint: ['/bin/sh'], cmd: ['-c', 'x'] })!.argv, ['/bin/sh', '-c', 'x']);
  assert.deepEqual(imageProcess(img, { env: ['A=2', 'B=3'], workingDir: '/tmp', user: 'root' }), { argv: ['/init', '--', 'serve', '-v'], env: ['PATH=/bin', 'A=2', 'B=3'], cwd: '/tmp', user: 'root' });
  assert.equal(imageProcess({ env: [], workingDir: '', user: '', entrypoint: null, cmd: null }), null, 'no command: nothing to run');
  assert.deepEqual(imageProcess({ env: [], workingDir: '', user: '', cmd: ['x'] }), { argv: ['x'], env: [], cwd: '/', user: 'root' });
  assert.deepEqual(mergeEnv(['A=1', 'B=2', 'bad'], ['B=3', 'C=']), ['A=1', 'B=3', 'C=']);
});

test('gc sees the layers overlay mounts use, escapes decoded', () => {
  const info = [
    '36 35 98:0 / / rw,relatime - ext4 /dev/vda rw',
    '100 36 0:50 / /var/lib/hearth/data/workspaces/ws_1/rootfs rw,relatime - overlay overlay rw,lowerdir=/art/layers/a/rootfs:/art/layers/b/rootfs,upperdir=/d/upper,workdir=/d/work,index=off',
    '101 36 0:51 / /mnt rw - overlay overlay rw,lowerdir=/with\\040space/rootfs',
    '102 36 0:52 / /x rw - tmpfs tmpfs rw,lowerdir=/not/overlay',
  ].join('\n');
  assert.deepEqual([...overlayPathsInUse(info)].sort(), ['/art/layers/a/rootfs', '/art/layers/b/rootfs', '/d/upper', '/d/work', '/with space/rootfs']);
});
