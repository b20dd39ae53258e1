import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { listCatalog, resolveImage, imageDigest } from '../../src/host/images/store.ts';
import { artifactPaths, artifactsRoot, DEFAULT_ARTIFACTS_DIR } from '../../src/host/images/paths.ts';
import { ImageNotBuiltError, PullNotAllowedError, UnknownImageError } from '../../src/host/images/errors.ts';
import { registryConfig } from '../../src/host/images/oci/auth.ts';
import { IMAGE_ENV } from '../../src/host/images/catalog.ts';
import type { ImageManifest } from '../../src/host/images/manifest.ts';

/** No registry: what a host without HEARTH_REGISTRY_MIRROR / HEARTH_DOCKER_HUB resolves. */
const OFFLINE = registryConfig({});

test('the artifacts root: parameter, then HEARTH_ARTIFACTS_DIR, then the default', () => {
  assert.equal(artifactsRoot(undefined, {}), DEFAULT_ARTIFACTS_DIR);
  assert.equal(artifactsRoot(undefined, { HEARTH_ARTIFACTS_DIR: '/srv/a' }), '/srv/a');
  assert.equal(artifactsRoot('/x/y/', { HEARTH_ARTIFACTS_DIR: '/srv/a' }), '/x/y');
  assert.deepEqual(artifactPaths('/a', {}), {
    root: '/a', downloads: '/a/downloads', node: '/a/node', agent: '/a/agent', layers: '/a/layers', images: '/a/images',
    refs: '/a/refs', derived: '/a/derived', tmp: '/a/tmp',
  });
});

async function fakeStore(): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-artifacts-'));
  const layers = ['layers/node-20-1111/rootfs', 'layers/debian-12-2222/rootfs'];
  for (const l of layers) await fs.mkdir(path.join(root, l, 'usr/bin'), { recursive: true });
  const digests = [`sha256:${'1'.repeat(64)}`, `sha256:${'2'.repeat(64)}`];
  const manifest: ImageManifest = {
    schema: 1, id: 'node-20', ref: 'hearth/node:20', layers, layer_digests: digests,
    env: IMAGE_ENV, workingDir: '/root', user: 'root',
    digest: imageDigest(digests, { env: IMAGE_ENV, workingDir: '/root', user: 'root' }),
    versions: { debian: '12.11', node: '20.20.2', npm: '10.9.9' }, built_at: new Date().toISOString(), recipe_version: 1,
  };
  await fs.mkdir(path.join(root, 'images'));
  await fs.writeFile(path.join(root, 'images/node-20.json'), JSON.stringify(manifest));
  return root;
}

test('a built image resolves by id, ref and alias to absolute layer dirs, top first', async () => {
  const root = await fakeStore();
  try {
    for (const name of ['node-20', 'hearth/node:20', 'node']) {
      const img = await resolveImage(name, { artifactsDir: root });
      assert.deepEqual(img.layers, [path.join(root, 'layers/node-20-1111/rootfs'), path.join(root, 'layers/debian-12-2222/rootfs')]);
      assert.equal(img.id, 'node-20');
      assert.equal(img.ref, 'hearth/node:20');
      assert.equal(img.workingDir, '/root');
      assert.equal(img.user, 'root');
      assert.deepEqual(img.env, IMAGE_ENV);
      assert.match(img.digest, /^sha256:[0-9a-f]{64}$/);
    }
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('unknown names and unbuilt images fail with typed errors and hints', async () => {
  const root = await fakeStore();
  try {
    await assert.rejects(resolveImage('python-3.13', { artifactsDir: root, registry: OFFLINE }), (e: unknown) =>
      e instanceof UnknownImageError && e.message === 'unknown image "python-3.13"' && e.hint?.startsWith('available images: node-20; Docker Hub names are pulled only when the host allows it (HEARTH_REGISTRY_MIRROR=<url> or HEARTH_DOCKER_HUB=1)') === true);
    // Offline, the seed's python-3.12 is refused (no source ships 3.12) unless the operator opts in to 3.11.
    await assert.rejects(resolveImage('python-3.12', { artifactsDir: root, registry: OFFLINE }), (e: unknown) =>
      e instanceof PullNotAllowedError && /no source this host reaches ships it/.test(e.message) && /HEARTH_REGISTRY_MIRROR/.test(e.hint ?? ''));
    await assert.rejects(resolveImage('python-3.12', { artifactsDir: root, registry: { ...OFFLINE, offlineSubstitutes: true } }), (e: unknown) =>
      e instanceof ImageNotBuiltError && e.message === 'image "python-3.11" is not built on this host');
    // go-1.22 is a catalog image of its own (bookworm-backports): not built in this store.
    await assert.rejects(resolveImage('go-1.22', { artifactsDir: root, registry: OFFLINE }), (e: unknown) =>
      e instanceof ImageNotBuiltError && /hearth setup --images go-1\.22/.test(e.hint ?? ''));
    await assert.rejects(resolveImage('python', { artifactsDir: root, registry: OFFLINE }), (e: unknown) =>
      e instanceof ImageNotBuiltError && e.message === 'image "python-3.11" is not built on this host' && /hearth setup --images python-3.11/.test(e.hint ?? ''));
    await fs.rm(path.join(root, 'layers/debian-12-2222'), { recursive: true });
    await assert.rejects(resolveImage('node-20', { artifactsDir: root, registry: OFFLINE }), (e: unknown) =>
      e instanceof ImageNotBuiltError && /is missing layers: layers\/debian-12-2222\/rootfs/.test(e.message));
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('the catalog lists every image with availability and real versions', async () => {
  const root = await fakeStore();
  try {
    const cat = await listCatalog({ artifactsDir: root, registry: OFFLINE });
    assert.deepEqual(cat.map((c) => [c.id, c.image, c.available, c.resolves_to ?? null]), [
      ['debian-12', 'hearth/debian:12', false, null],
      ['node-20', 'hearth/node:20', true, null],
      ['python-3.11', 'hearth/python:3.11', false, null],
      ['go-1.22', 'hearth/golang:1.22', false, null],
      ['rust-1', 'hearth/rust:1', false, null],
      ['postgres-16', 'hearth/postgres:16', false, null],
      ['python-3.12', 'python-3.12', false, null],
    ]);
    assert.match(cat[6]!.note ?? '', /^unavailable: .*HEARTH_REGISTRY_MIRROR/, 'an offline python-3.12 does not pretend');
    assert.match(cat[3]!.origin?.go ?? '', /golang-1\.22-go from bookworm-backports/);
    assert.match(cat[3]!.note ?? '', /hearth setup --images go-1\.22/);
    const opted = await listCatalog({ artifactsDir: root, registry: { ...OFFLINE, offlineSubstitutes: true } });
    const py = opted.find((c) => c.id === 'python-3.12')!;
    assert.equal(py.resolves_to, 'python-3.11');
    assert.match(py.note ?? '', /Python 3\.11 \(bookworm has no 3\.12\)/, 'an opted-in substitute says what it is');
    assert.deepEqual(cat[1]!.versions, { debian: '12.11', node: '20.20.2', npm: '10.9.9' });
    assert.deepEqual(cat[0]!.versions, {});
    assert.deepEqual(cat[2]!.aliases, ['python-3', 'python', 'hearth/python:3', 'python-3.11-bookworm']);
    for (const c of cat) assert.ok(['os', 'runtime', 'database'].includes(c.category) && c.label && c.desc);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('a corrupt manifest is reported as not built, not as a crash', async () => {
  const root = await fakeStore();
  try {
    await fs.writeFile(path.join(root, 'images/node-20.json'), '{"schema":1');
    await assert.rejects(resolveImage('node-20', { artifactsDir: root, registry: OFFLINE }), (e: unknown) => e instanceof ImageNotBuiltError && /unreadable manifest/.test(e.message));
    assert.equal((await listCatalog({ artifactsDir: root, registry: OFFLINE }))[1]!.available, false);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
