/**
 * Pulling from real registries on loopback: Debian's docker-registry (the
 * distribution server), started here with a temporary storage dir and
 * holding images this test builds and pushes itself; and a small in-process
 * registry for token auth and a registry that hangs. Pulls go into a
 * temporary artifacts dir; overlay mounts check what a workspace would see.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isRoot } from '../helpers/root.ts';
import { hasDockerRegistry, registryBlobPath, startFakeRegistry, startRegistry, type Registry } from '../helpers/registry.ts';
import { buildImage, buildIndex, busyboxEntries, pushImage, type TarSpec } from '../helpers/oci-images.ts';
import { artifactPaths } from '../../src/host/images/paths.ts';
import { listCatalog, pullByName, resolveImage } from '../../src/host/images/resolve.ts';
import { registryConfig, type RegistryConfig } from '../../src/host/images/oci/auth.ts';
import { listRefs, listImageRecords, ociLayerDir } from '../../src/host/images/oci/records.ts';
import { BlobVerificationError, ImageNotFoundError, RegistryError } from '../../src/host/images/errors.ts';
import { ImageReferenceError } from '../../src/host/images/oci/reference.ts';
import { UnsafeLayerError } from '../../src/host/images/oci/unpack.ts';
import type { PullEvent } from '../../src/host/images/oci/pull.ts';

const skip = !isRoot ? 'needs root: whiteouts are device nodes, opaque dirs trusted.* xattrs, overlay mounts'
  : !hasDockerRegistry ? 'needs the docker-registry package (hearth setup installs it)' : false;

let reg: Registry;
let artifacts: string;
const mounts: string[] = [];
// The test registries live on loopback, which the outbound policy refuses unless listed: list them, as an operator would.
const cfg = (over: Partial<RegistryConfig> = {}): RegistryConfig => ({ ...registryConfig({ HEARTH_PRIVATE_REGISTRIES: '127.0.0.1' }), timeoutMs: 5000, ...over });

before(async () => {
  if (skip) return;
  reg = await startRegistry();
  artifacts = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-oci-art-'));
});

after(async () => {
  for (const m of mounts.reverse()) {
    execFileSync('umount', [m]);
    await fs.rmdir(m);
  }
  if (reg) await reg.stop();
  if (artifacts) await fs.rm(artifacts, { recursive: true, force: true });
});

async function scratchLeft(): Promise<string[]> {
  return (await fs.readdir(artifactPaths(artifacts).tmp).catch(() => [] as string[])).filter((n) => n.includes(`.${process.pid}.`));
}

/** Mount the image's layers read-only (as a workspace's lower dirs) and return the mountpoint. */
async function mountLayers(layers: string[]): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-oci-mnt-'));
  // Two lowerdirs at least: overlay needs upper+work or 2+ lowers to mount read-only.
  const lower = layers.length > 1 ? layers : [...layers, await fs.mkdtemp(path.join(artifacts, 'empty-lower-'))];
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower.join(':')}`, dir]);
  mounts.push(dir);
  return dir;
}

const base: TarSpec[] = [
  ...busyboxEntries(),
  { type: 'dir', path: 'a/' },
  { type: 'file', path: 'a/x', content: 'x' },
  { type: 'file', path: 'a/y', content: 'y' },
  { type: 'file', path: 'gone', content: 'gone' },
  { type: 'dir', path: 'keep/' },
  { type: 'file', path: 'keep/old', content: 'old' },
  { type: 'file', path: 'etc/os-release', content: 'NAME=test\n' },
];
const top: TarSpec[] = [
  { type: 'file', path: '.wh.gone' },
  { type: 'dir', path: 'a/' },
  { type: 'file', path: 'a/.wh..wh..opq' },
  { type: 'file', path: 'a/z', content: 'z' },
  { type: 'file', path: 'keep/new', content: 'new', mode: 0o4755, uid: 1000, gid: 1000 },
  { type: 'file', path: 'h1', content: 'same inode' },
  { type: 'hardlink', path: 'h2', target: 'h1' },
  { type: 'char', path: 'dev-null-copy', major: 1, minor: 3 },
  { type: 'block', path: 'dev-sda-copy', major: 8, minor: 0 },
  { type: 'fifo', path: 'pipe' },
  { type: 'symlink', path: 'abs-link', target: '/etc/os-release' },
  { type: 'file', path: 'capped', content: 'c', xattrs: { 'user.note': 'kept', 'trusted.overlay.opaque': 'y' } },
];

test('a multi-layer image with whiteouts, an opaque dir, hard links and device nodes pulls and stacks like Docker', { skip }, async () => {
  const img = buildImage({ layers: [base, top], env: ['PATH=/bin', 'GREETING=hi'], cmd: ['sh', '-c', 'echo $GREETING'], workingDir: '/a' });
  await pushImage(reg.url, 'demo/layers', 'v1', img);
  const events: PullEvent[] = [];
  const resolved = await resolveImage(`${reg.host}/demo/layers:v1`, { artifactsDir: artifacts, registry: cfg(), onPull: (e) => events.push(e) });
  assert.equal(resolved.layers.length, 2);
  assert.equal(resolved.digest, img.configDigest);
  assert.deepEqual(resolved.cmd, ['sh', '-c', 'echo $GREETING']);
  assert.equal(resolved.workingDir, '/a');
  assert.ok(resolved.env.includes('GREETING=hi'));
  assert.equal(resolved.layers[0], path.join(ociLayerDir(artifactPaths(artifacts), img.diffIds[1]!), 'rootfs'), 'top layer first');

  // The top layer on disk, in overlay's own form.
  const topDir = resolved.layers[0]!;
  const gone = await fs.lstat(path.join(topDir, 'gone'));
  assert.ok(gone.isCharacterDevice() && gone.rdev === 0, 'whiteout = 0/0 char device');
  assert.equal(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', path.join(topDir, 'a')], { encoding: 'utf8' }), 'y');
  await assert.rejects(fs.lstat(path.join(topDir, 'dev-null-copy')), /ENOENT/, 'device nodes are never created');
  await assert.rejects(fs.lstat(path.join(topDir, 'dev-sda-copy')), /ENOENT/);
  await assert.rejects(fs.lstat(path.join(topDir, 'pipe')), /ENOENT/);
  const attrs = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', path.join(topDir, 'capped')], { encoding: 'utf8' });
  assert.match(attrs, /user\.note="kept"/);
  assert.doesNotMatch(attrs, /trusted\.overlay/, 'an image cannot smuggle overlay metadata');
  const meta = JSON.parse(await fs.readFile(path.join(topDir, '..', 'layer.json'), 'utf8'));
  assert.deepEqual(meta.stats.skipped.map((s: { path: string }) => s.path).sort(), ['/capped', '/dev-null-copy', '/dev-sda-copy', '/pipe']);

  // What a workspace sees.
  const root = await mountLayers(resolved.layers);
  assert.deepEqual((await fs.readdir(path.join(root, 'a'))).sort(), ['z'], 'opaque dir hides the lower a/x and a/y');
  await assert.rejects(fs.lstat(path.join(root, 'gone')), /ENOENT/, 'whiteout hides the lower file');
  assert.deepEqual((await fs.readdir(path.join(root, 'keep'))).sort(), ['new', 'old'], 'plain dirs merge');
  const [h1, h2] = [await fs.stat(path.join(root, 'h1')), await fs.stat(path.join(root, 'h2'))];
  assert.equal(h1.ino, h2.ino, 'hard link');
  assert.equal(h1.nlink, 2);
  const nw = await fs.stat(path.join(root, 'keep/new'));
  assert.deepEqual([nw.uid, nw.gid, nw.mode & 0o7777], [1000, 1000, 0o4755], 'owner and setuid kept');
  assert.equal(await fs.readlink(path.join(root, 'abs-link')), '/etc/os-release');
  assert.equal(execFileSync('chroot', [root, '/bin/sh', '-c', 'cat /abs-link'], { encoding: 'utf8' }), 'NAME=test\n', 'absolute symlinks resolve inside the image');

  // Events for a progress bar; and the second time nothing is downloaded.
  assert.ok(events.some((e) => e.type === 'layer' && e.state === 'downloading' && e.bytes > 0));
  const done = events.find((e) => e.type === 'done');
  assert.ok(done && done.type === 'done' && !done.cached && done.downloaded > 0);
  const again = await pullByName(`${reg.host}/demo/layers:v1`, { artifactsDir: artifacts, registry: cfg() });
  assert.equal(again.cached, true);
  assert.equal(again.downloaded, 0);
  assert.deepEqual(await scratchLeft(), []);
});

test('an image sharing its base layer with a pulled one downloads only its own layer', { skip }, async () => {
  const other = buildImage({ layers: [base, [{ type: 'file', path: 'other', content: 'o' }]] });
  await pushImage(reg.url, 'demo/other', 'v1', other);
  const got = await pullByName(`${reg.host}/demo/other:v1`, { artifactsDir: artifacts, registry: cfg() });
  assert.equal(got.cached, false);
  assert.equal(got.downloaded, other.blobs.get(other.layerDigests[1]!)!.length, 'the shared base layer is unpacked once');
});

test('a multi-arch index resolves to linux/amd64', { skip }, async () => {
  const amd = buildImage({ layers: [[...busyboxEntries(['sh', 'cat']), { type: 'file', path: 'arch', content: 'amd64' }]] });
  const arm = buildImage({ layers: [[{ type: 'file', path: 'arch', content: 'arm64' }]], architecture: 'arm64' });
  const { index } = buildIndex([
    { image: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { image: amd, platform: { os: 'linux', architecture: 'amd64' } },
  ]);
  await pushImage(reg.url, 'demo/multi', 'latest', amd, { bytes: index, mediaType: 'application/vnd.oci.image.index.v1+json', extra: [arm] });
  const img = await resolveImage(`${reg.host}/demo/multi`, { artifactsDir: artifacts, registry: cfg() });
  assert.equal(await fs.readFile(path.join(img.layers[0]!, 'arch'), 'utf8'), 'amd64');
  assert.equal(img.digest, amd.configDigest);

  const armOnly = buildIndex([{ image: arm, platform: { os: 'linux', architecture: 'arm64' } }]);
  await pushImage(reg.url, 'demo/armonly', 'latest', arm, { bytes: armOnly.index, mediaType: 'application/vnd.oci.image.index.v1+json' });
  await assert.rejects(resolveImage(`${reg.host}/demo/armonly`, { artifactsDir: artifacts, registry: cfg() }),
    (e: Error) => e.name === 'InvalidImageError' && /no linux\/amd64 variant \(it offers: linux\/arm64\)/.test(e.message));
});

test('a corrupted blob is refused with a clear error and leaves nothing behind', { skip }, async () => {
  const img = buildImage({ layers: [[{ type: 'file', path: 'good', content: 'fine' }], [{ type: 'file', path: 'data', content: 'x'.repeat(100_000) }]] });
  await pushImage(reg.url, 'demo/corrupt', 'v1', img);
  // Flip bytes in the middle of the top layer's blob, as bit rot on the registry's disk would.
  const file = registryBlobPath(reg, img.layerDigests[1]!);
  const bytes = await fs.readFile(file);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  await fs.writeFile(file, bytes);
  const before = (await listImageRecords(artifactPaths(artifacts))).length;
  await assert.rejects(resolveImage(`${reg.host}/demo/corrupt:v1`, { artifactsDir: artifacts, registry: cfg() }), (e: unknown) => {
    assert.ok(e instanceof BlobVerificationError, String(e));
    assert.match(e.message, new RegExp(`blob ${img.layerDigests[1]} from ${reg.host} failed verification: its content hashes to sha256:[0-9a-f]{64}`));
    assert.match(e.hint ?? '', /nothing was unpacked/);
    return true;
  });
  const paths = artifactPaths(artifacts);
  await assert.rejects(fs.access(ociLayerDir(paths, img.diffIds[1]!)), /ENOENT/, 'no layer dir for the corrupt blob');
  assert.equal((await listImageRecords(paths)).length, before, 'no image record');
  assert.ok(!(await listRefs(paths)).some((r) => r.ref.includes('demo/corrupt')), 'no name');
  assert.deepEqual(await scratchLeft(), [], 'no scratch file or half-unpacked dir');
});

test('bad references, unknown tags and repositories get validation errors; Docker Hub names stay offline', { skip }, async () => {
  for (const bad of [`${reg.host}/Demo/x:1`, `${reg.host}/demo/x:-bad`, 'demo/x@sha256:123', `${reg.host}/demo//x`, 'a b']) {
    await assert.rejects(resolveImage(bad, { artifactsDir: artifacts, registry: cfg() }), (e: Error) => (e instanceof ImageReferenceError || e.name === 'UnknownImageError') && e.message.includes(JSON.stringify(bad.trim())), bad);
  }
  await assert.rejects(resolveImage(`${reg.host}/demo/layers:nope`, { artifactsDir: artifacts, registry: cfg() }),
    (e: Error) => e instanceof ImageNotFoundError && /has no manifest nope for demo\/layers/.test(e.message));
  await assert.rejects(resolveImage(`${reg.host}/demo/missing:v1`, { artifactsDir: artifacts, registry: cfg() }),
    (e: Error) => e instanceof ImageNotFoundError && /demo\/missing/.test(e.message));
  // Without a mirror or HEARTH_DOCKER_HUB, an unqualified name is never looked up on the internet.
  await assert.rejects(resolveImage('python:3.12-slim', { artifactsDir: artifacts, registry: cfg() }),
    (e: Error & { hint?: string }) => e.name === 'UnknownImageError' && /HEARTH_DOCKER_HUB/.test(e.hint ?? ''));
  // With the loopback registry as Docker Hub mirror, the same kind of name is pulled from it.
  const img = buildImage({ layers: [[{ type: 'file', path: 'hub', content: 'mirror' }]] });
  await pushImage(reg.url, 'library/hubby', '1.0', img);
  const viaMirror = await resolveImage('hubby:1.0', { artifactsDir: artifacts, registry: cfg({ mirror: reg.url, dockerHub: true }) });
  assert.equal(await fs.readFile(path.join(viaMirror.layers[0]!, 'hub'), 'utf8'), 'mirror');
  // …and then it is local: found without any registry at all.
  const offline = await resolveImage('docker.io/library/hubby:1.0', { artifactsDir: artifacts, registry: cfg({ dockerHub: false }) });
  assert.equal(offline.digest, img.configDigest);
});

test('a registry that hangs is abandoned after the idle timeout with a clear error', { skip }, async () => {
  const img = buildImage({ layers: [[{ type: 'file', path: 'slow', content: 's'.repeat(10_000) }]] });
  const fake = await startFakeRegistry({ manifests: { 'demo/slow': { v1: { bytes: img.manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' } } }, blobs: img.blobs });
  try {
    for (const mode of ['headers', 'body'] as const) {
      fake.hang = mode;
      const t0 = Date.now();
      await assert.rejects(resolveImage(`${fake.host}/demo/slow:v1`, { artifactsDir: artifacts, registry: cfg({ timeoutMs: 700 }) }), (e: Error & { hint?: string }) => {
        assert.ok(e instanceof RegistryError, String(e));
        assert.match(e.message, new RegExp(`registry ${fake.host}: sent nothing for 0\\.7 s while (fetching the manifest|fetching blob|downloading blob)`));
        assert.match(e.hint ?? '', /HEARTH_REGISTRY_TIMEOUT_MS/);
        return true;
      });
      assert.ok(Date.now() - t0 < 5000, `${mode}: gave up in ${Date.now() - t0} ms`);
      assert.deepEqual(await scratchLeft(), []);
    }
    fake.hang = 'none';
    const ok = await resolveImage(`${fake.host}/demo/slow:v1`, { artifactsDir: artifacts, registry: cfg() });
    assert.equal(ok.digest, img.configDigest);
  } finally {
    await fake.stop();
  }
});

test('concurrent pulls of one image share one download', { skip }, async () => {
  const img = buildImage({ layers: [[{ type: 'file', path: 'one', content: '1'.repeat(200_000) }], [{ type: 'file', path: 'two', content: '2' }]] });
  const fake = await startFakeRegistry({ manifests: { 'demo/shared': { v1: { bytes: img.manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' } } }, blobs: img.blobs });
  try {
    const ref = `${fake.host}/demo/shared:v1`;
    const all = await Promise.all(Array.from({ length: 5 }, () => resolveImage(ref, { artifactsDir: artifacts, registry: cfg() })));
    assert.ok(all.every((i) => i.digest === img.configDigest));
    for (const d of img.layerDigests) assert.equal(fake.requests.filter((r) => r === `GET /v2/demo/shared/blobs/${d}`).length, 1, `layer ${d} downloaded once`);
  } finally {
    await fake.stop();
  }
});

test('token auth: anonymous is refused, credentials from a Docker config file get a token', { skip }, async () => {
  const img = buildImage({ layers: [[{ type: 'file', path: 'private', content: 'p' }]] });
  const auth = { username: 'hearth', password: 's3cret' };
  const fake = await startFakeRegistry({ manifests: { 'org/private': { v1: { bytes: img.manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' } } }, blobs: img.blobs, auth });
  try {
    await assert.rejects(resolveImage(`${fake.host}/org/private:v1`, { artifactsDir: artifacts, registry: cfg() }),
      (e: Error & { hint?: string }) => e instanceof ImageNotFoundError && /pull access denied/.test(e.message) && /HEARTH_REGISTRY_AUTH_FILE/.test(e.hint ?? ''));
    const authFile = path.join(artifacts, 'auth.json');
    await fs.writeFile(authFile, JSON.stringify({ auths: { [fake.host]: { auth: Buffer.from('hearth:s3cret').toString('base64') } } }));
    const withCreds = registryConfig({ HEARTH_REGISTRY_AUTH_FILE: authFile, HEARTH_PRIVATE_REGISTRIES: fake.host });
    const got = await resolveImage(`${fake.host}/org/private:v1`, { artifactsDir: artifacts, registry: { ...withCreds, timeoutMs: 5000 } });
    assert.equal(got.digest, img.configDigest);
    assert.ok(fake.requests.includes('GET /token Basic'), 'the token endpoint got the credentials');
    assert.ok(fake.requests.some((r) => r.startsWith('GET /v2/org/private/blobs/') && r.endsWith('Bearer')), 'blobs were fetched with the token');
  } finally {
    await fake.stop();
  }
});

test('hostile layers: "../" paths, writes through symlinks and hard links out of the layer are refused; the host is untouched', { skip }, async () => {
  const marker = `hearth-pwned-${process.pid}`;
  const cases: Array<[string, TarSpec[]]> = [
    ['dotdot', [{ type: 'file', path: `../../../../../../tmp/${marker}`, content: 'x' }]],
    ['abs-symlink', [{ type: 'symlink', path: 'evil', target: '/tmp' }, { type: 'file', path: `evil/${marker}`, content: 'x' }]],
    ['rel-symlink', [{ type: 'symlink', path: 'up', target: '../../../../../../../tmp' }, { type: 'file', path: `up/${marker}`, content: 'x' }]],
    ['hardlink-out', [{ type: 'hardlink', path: 'shadow', target: '/etc/shadow' }]],
  ];
  for (const [name, entries] of cases) {
    const img = buildImage({ layers: [entries] });
    await pushImage(reg.url, `demo/hostile-${name}`, 'v1', img);
    await assert.rejects(resolveImage(`${reg.host}/demo/hostile-${name}:v1`, { artifactsDir: artifacts, registry: cfg() }), (e: Error) => {
      assert.ok(e instanceof UnsafeLayerError, `${name}: ${e}`);
      assert.match(e.message, /unsafe image layer: entry/);
      return true;
    });
    await assert.rejects(fs.access(`/tmp/${marker}`), /ENOENT/, `${name}: nothing written outside`);
    await assert.rejects(fs.access(ociLayerDir(artifactPaths(artifacts), img.diffIds[0]!)), /ENOENT/, `${name}: no layer kept`);
  }
  assert.deepEqual(await scratchLeft(), []);
});

test('the catalog lists pulled images with their config and never touches the network', { skip }, async () => {
  const cat = await listCatalog({ artifactsDir: artifacts, registry: cfg() });
  const layers = cat.find((c) => c.id === `${reg.host}/demo/layers:v1`);
  assert.ok(layers, JSON.stringify(cat.map((c) => c.id)));
  assert.equal(layers.source, 'pulled');
  assert.equal(layers.available, true);
  assert.deepEqual(layers.config?.cmd, ['sh', '-c', 'echo $GREETING']);
  assert.equal(layers.config?.working_dir, '/a');
});

