/**
 * Importing archives for air-gapped hosts (`docker save`, OCI layouts,
 * gzip-compressed or not) into a temporary artifacts dir, digest checks on
 * every blob, and garbage collection of what no image uses any more.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isRoot } from '../helpers/root.ts';
import { buildImage, buildIndex, busyboxEntries, dockerSaveArchive, ociLayoutArchive, tar, type TarSpec } from '../helpers/oci-images.ts';
import { artifactPaths } from '../../src/host/images/paths.ts';
import { importArchive } from '../../src/host/images/oci/import.ts';
import { listImageRecords, listRefs, ociLayerDir, refFile } from '../../src/host/images/oci/records.ts';
import { resolveImage } from '../../src/host/images/resolve.ts';
import { registryConfig } from '../../src/host/images/oci/auth.ts';
import { collectGarbage } from '../../src/host/images/gc.ts';
import { ensureImageArtifact } from '../../src/host/images/derived.ts';
import { BlobVerificationError, InvalidImageError } from '../../src/host/images/errors.ts';

const skip = isRoot ? false : 'needs root: layers keep owners, whiteouts are device nodes';
let artifacts: string;
let work: string;
const OFFLINE = registryConfig({});
const mounts: string[] = [];

before(async () => {
  if (skip) return;
  artifacts = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-import-art-'));
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-import-work-'));
});
after(async () => {
  for (const m of mounts) {
    execFileSync('umount', [m]);
    await fs.rmdir(m);
  }
  for (const d of [artifacts, work]) if (d) await fs.rm(d, { recursive: true, force: true });
});

const paths = () => artifactPaths(artifacts);
const app: TarSpec[] = [{ type: 'dir', path: 'app/' }, { type: 'file', path: 'app/run.sh', content: '#!/bin/sh\necho run\n', mode: 0o755 }];

async function write(name: string, data: Buffer): Promise<string> {
  const file = path.join(work, name);
  await fs.writeFile(file, data);
  return file;
}

test('a docker save archive imports with its tags and config; duplicate layers linked by docker are followed inside the archive', { skip }, async () => {
  const img = buildImage({ layers: [busyboxEntries(['sh']), app], env: ['PATH=/bin', 'MODE=prod'], cmd: ['/app/run.sh'], workingDir: '/app', user: '1000', gzip: false });
  const save = dockerSaveArchive(img, ['team/app:1.0', 'registry.lan:5000/team/app:1.0', 'not a tag']);
  const res = await importArchive(await write('app.tar', save), { paths: paths() });
  assert.equal(res.format, 'docker-archive');
  assert.deepEqual(res.images[0]!.refs, ['docker.io/team/app:1.0', 'registry.lan:5000/team/app:1.0'], 'an unparsable tag is skipped, not fatal');
  const resolved = await resolveImage('team/app:1.0', { artifactsDir: artifacts, registry: OFFLINE });
  assert.deepEqual([resolved.digest, resolved.cmd, resolved.workingDir, resolved.user], [img.configDigest, ['/app/run.sh'], '/app', '1000']);
  assert.equal((await resolveImage('registry.lan:5000/team/app:1.0', { artifactsDir: artifacts, registry: OFFLINE })).digest, img.configDigest, 'found locally: no pull');
  assert.equal((await resolveImage(img.configDigest, { artifactsDir: artifacts, registry: OFFLINE })).id, res.images[0]!.record.id, 'by config digest (Docker image id)');
  assert.equal((await fs.stat(path.join(resolved.layers[0]!, 'app/run.sh'))).mode & 0o777, 0o755);

  // Docker links identical layers to one file: `<id>/layer.tar -> ../<other>/layer.tar`.
  const twin = buildImage({ layers: [app, app], gzip: false });
  const entries: TarSpec[] = [
    { type: 'file', path: `${twin.configDigest.slice(7)}.json`, content: twin.config },
    { type: 'dir', path: 'one/' }, { type: 'file', path: 'one/layer.tar', content: twin.layerTars[0]! },
    { type: 'dir', path: 'two/' }, { type: 'symlink', path: 'two/layer.tar', target: '../one/layer.tar' },
    { type: 'file', path: 'manifest.json', content: JSON.stringify([{ Config: `${twin.configDigest.slice(7)}.json`, RepoTags: ['twin:1'], Layers: ['one/layer.tar', 'two/layer.tar'] }]) },
  ];
  const twinRes = await importArchive(await write('twin.tar', tar(entries)), { paths: paths() });
  assert.equal(twinRes.images[0]!.record.layers.length, 2);
  // A link that points out of the archive resolves inside it (chroot rules), so it names nothing.
  const escape = entries.map((e) => (e.path === 'two/layer.tar' ? { ...e, target: '/etc/passwd' } : e)) as TarSpec[];
  await assert.rejects(importArchive(await write('escape.tar', tar(escape)), { paths: paths() }), (e: Error) => e instanceof InvalidImageError && /missing or not a regular file|does not contain/.test(e.message));
});

test('an OCI layout (gzip-compressed archive, multi-arch index, ref annotation) imports the amd64 image; --tag names it', { skip }, async () => {
  const amd = buildImage({ layers: [[{ type: 'file', path: 'arch', content: 'amd64' }]] });
  const arm = buildImage({ layers: [[{ type: 'file', path: 'arch', content: 'arm64' }]], architecture: 'arm64' });
  const { index, digest } = buildIndex([{ image: arm, platform: { os: 'linux', architecture: 'arm64' } }, { image: amd, platform: { os: 'linux', architecture: 'amd64' } }]);
  const layout = ociLayoutArchive(amd, 'ghcr.io/org/multi:2', new Map([...arm.blobs, [digest, index]]), { bytes: index, digest, mediaType: 'application/vnd.oci.image.index.v1+json' });
  const res = await importArchive(await write('multi.tar.gz', gzipSync(layout)), { paths: paths(), tag: 'multi:local' });
  assert.equal(res.format, 'oci-archive');
  assert.deepEqual(res.images[0]!.refs, ['ghcr.io/org/multi:2', 'docker.io/library/multi:local']);
  assert.equal(res.images[0]!.record.manifest_digest, amd.manifestDigest);
  const img = await resolveImage('multi:local', { artifactsDir: artifacts, registry: OFFLINE });
  assert.equal(await fs.readFile(path.join(img.layers[0]!, 'arch'), 'utf8'), 'amd64');

  // A bare tag annotation names nothing on its own: the image is imported, nameless unless --tag.
  const bare = buildImage({ layers: [[{ type: 'file', path: 'bare', content: '1' }]] });
  const nameless = await importArchive(await write('bare.tar', ociLayoutArchive(bare, 'latest')), { paths: paths() });
  assert.deepEqual(nameless.images[0]!.refs, []);
  assert.equal((await resolveImage(nameless.images[0]!.record.id, { artifactsDir: artifacts, registry: OFFLINE })).digest, bare.configDigest);
});

test('a corrupted blob inside an archive is refused and nothing of it is kept', { skip }, async () => {
  const img = buildImage({ layers: [[{ type: 'file', path: 'x', content: 'y'.repeat(10_000) }]] });
  const bad = new Map(img.blobs);
  const layer = Buffer.from(bad.get(img.layerDigests[0]!)!);
  layer[layer.length >> 1]! ^= 1;
  bad.set(img.layerDigests[0]!, layer);
  const broken = { ...img, blobs: bad };
  const before = (await listImageRecords(paths())).length;
  await assert.rejects(importArchive(await write('broken.tar', ociLayoutArchive(broken, 'org/broken:1')), { paths: paths() }),
    (e: Error) => e instanceof BlobVerificationError && new RegExp(`blob ${img.layerDigests[0]} from broken.tar layer 1/1 failed verification`).test(e.message));
  assert.equal((await listImageRecords(paths())).length, before);
  await assert.rejects(fs.access(ociLayerDir(paths(), img.diffIds[0]!)), /ENOENT/);
  // docker save: a layer.tar that does not hash to its diff_id.
  const save = buildImage({ layers: [[{ type: 'file', path: 'a', content: 'a' }]], gzip: false });
  const tampered = { ...save, layerTars: [tar([{ type: 'file', path: 'a', content: 'EVIL' }])] };
  await assert.rejects(importArchive(await write('tampered.tar', dockerSaveArchive(tampered, ['tampered:1'])), { paths: paths() }),
    (e: Error) => e instanceof BlobVerificationError && /the uncompressed layer hashes to sha256:[0-9a-f]{64}, not to its diff_id/.test(e.message));
  assert.deepEqual((await fs.readdir(paths().tmp)).filter((n) => n.includes(`.${process.pid}.`)), [], 'no scratch left');
});

test('gc removes what nothing uses, keeps what is named, mounted or too young', { skip }, async () => {
  const p = paths();
  const a = buildImage({ layers: [[{ type: 'file', path: 'shared', content: 's' }], [{ type: 'file', path: 'a', content: 'a' }]] });
  const b = buildImage({ layers: [[{ type: 'file', path: 'shared', content: 's' }], [{ type: 'file', path: 'b', content: 'b' }]] });
  await importArchive(await write('a.tar', ociLayoutArchive(a, 'gc/a:1')), { paths: p });
  await importArchive(await write('b.tar', ociLayoutArchive(b, 'gc/b:1')), { paths: p });
  const bImg = await resolveImage('gc/b:1', { artifactsDir: artifacts, registry: OFFLINE });
  const artifact = await ensureImageArtifact({ artifactsDir: artifacts, image: bImg, kind: 'test-disk', version: 1, build: async (dir) => fs.writeFile(path.join(dir, 'disk.img'), 'x') });
  assert.equal((await ensureImageArtifact({ artifactsDir: artifacts, image: bImg, kind: 'test-disk', version: 1, build: async () => { throw new Error('built twice'); } })).cached, true);

  // Drop b's name: with --untagged its record goes, then its own layer and artifact; the shared layer stays (a uses it).
  await fs.rm(refFile(p, 'docker.io/gc/b:1'));
  const dry = await collectGarbage({ artifactsDir: artifacts, untagged: true, graceMs: 0, dryRun: true });
  assert.ok(dry.images.length >= 1 && dry.dryRun);
  assert.ok(await fs.stat(path.join(p.images, `${bImg.id}.json`)), 'a dry run removes nothing');
  const report = await collectGarbage({ artifactsDir: artifacts, untagged: true, graceMs: 0 });
  assert.ok(report.images.some((i) => i.startsWith(`image ${bImg.id}`)), JSON.stringify(report));
  assert.ok(report.layers.includes(`layer ${path.basename(ociLayerDir(p, b.diffIds[1]!))}`));
  assert.ok(!report.layers.includes(`layer ${path.basename(ociLayerDir(p, b.diffIds[0]!))}`), 'the shared layer is still used by gc/a');
  assert.ok(report.derived.some((d) => d.startsWith('artifact test-disk/')));
  await assert.rejects(fs.access(artifact.dir), /ENOENT/);
  assert.ok(report.freedBytes > 0);
  assert.equal((await resolveImage('gc/a:1', { artifactsDir: artifacts, registry: OFFLINE })).digest, a.configDigest, 'a still resolves');

  // A dangling name is removed; an unreferenced layer that is mounted, or young, is kept.
  const aImg = await resolveImage('gc/a:1', { artifactsDir: artifacts, registry: OFFLINE });
  await fs.rm(path.join(p.images, `${aImg.id}.json`));
  const mnt = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-gc-mnt-'));
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${aImg.layers.join(':')}`, mnt]);
  mounts.push(mnt);
  const young = await collectGarbage({ artifactsDir: artifacts, graceMs: 60_000 });
  assert.ok(young.refs.some((r) => r.startsWith('ref docker.io/gc/a:1')));
  assert.ok(young.kept.some((k) => k.includes('(mounted)')));
  const old = await collectGarbage({ artifactsDir: artifacts, graceMs: 0 });
  assert.ok(old.kept.filter((k) => k.includes('(mounted)')).length === 2, JSON.stringify(old.kept));
  assert.ok(!(await listRefs(p)).some((r) => r.ref.includes('gc/')));
});
