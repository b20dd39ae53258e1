/**
 * Any Docker image, end to end, through the official SDK against a real
 * `hearth serve`: an image imported from a `docker save` archive with
 * `hearth images import` runs its default command with its Env and
 * WorkingDir; an image pushed to a loopback docker-registry is pulled by a
 * create; the seed's `python-3.12` maps to the official image when a mirror
 * is configured; and bad input (malformed references, unknown tags, a
 * hanging registry, a corrupted blob, a hostile archive) is refused with
 * nothing created.
 *
 * (The default command's argv, Env and WorkingDir come from the image's
 * config as `images.list` reports it; the workload and exec calls pass them.)
 *
 * hearthd uses the shared artifacts dir (the agent drive and catalog images
 * live there), so every image this test adds is removed again in `after`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Oblien, Runtime, ValidationError } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { waitUntil } from '../helpers/wait.ts';
import { isRoot } from '../helpers/root.ts';
import { hasDockerRegistry, registryBlobPath, startFakeRegistry, startRegistry, type FakeRegistry, type Registry } from '../helpers/registry.ts';
import { buildImage, busyboxEntries, dockerSaveArchive, pushImage, tar } from '../helpers/oci-images.ts';
import { artifactPaths } from '../../src/host/images/paths.ts';
import { listImageRecords, listRefs, refFile } from '../../src/host/images/oci/records.ts';

const skip = !isRoot ? 'needs root: runc, bridges and nftables (CI runs as root)' : !hasDockerRegistry ? 'needs the docker-registry package' : false;
const repo = path.resolve(import.meta.dirname, '..', '..');
const run = `e2e${randomBytes(3).toString('hex')}`;
const paths = artifactPaths();

let h: HearthInstance;
let client: Oblien;
let reg: Registry;
let fake: FakeRegistry;
const scratch: string[] = [];
const ourDigests = new Set<string>();

/** Remove what this test put in the shared artifacts dir: its names, their images and layers no other image uses. */
async function forgetOurImages(): Promise<void> {
  for (const r of await listRefs(paths)) {
    if (r.ref.includes(run) || r.ref.includes(`${reg?.host ?? '-'}/`) || r.ref === 'docker.io/library/python:3.12-slim-bookworm') {
      ourDigests.add(r.digest);
      await fs.rm(refFile(paths, r.ref), { force: true });
    }
  }
  const records = await listImageRecords(paths);
  const named = new Set((await listRefs(paths)).map((r) => r.image));
  const keep = new Set<string>();
  for (const m of records) if (!ourDigests.has(m.digest) || named.has(m.id)) for (const l of m.layers) keep.add(l);
  for (const m of records) {
    if (!ourDigests.has(m.digest) || named.has(m.id)) continue;
    for (const l of m.layers) if (!keep.has(l)) await fs.rm(path.join(paths.root, path.dirname(l)), { recursive: true, force: true });
    await fs.rm(path.join(paths.images, `${m.id}.json`), { force: true });
  }
}

before(async () => {
  if (skip) return;
  reg = await startRegistry();
  const slow = buildImage({ layers: [[{ type: 'file', path: 'slow', content: 's' }]] });
  fake = await startFakeRegistry({ manifests: { 'e2e/slow': { v1: { bytes: slow.manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' } } }, blobs: slow.blobs });
  fake.hang = 'headers';
  // hearthd inherits these: the loopback registry stands in for Docker Hub, and a hung registry is given up on quickly.
  // Both registries are on loopback, which pulls may only reach when an operator lists them.
  process.env.HEARTH_REGISTRY_MIRROR = reg.url;
  process.env.HEARTH_PRIVATE_REGISTRIES = `${reg.host},${fake.host}`;
  process.env.HEARTH_REGISTRY_TIMEOUT_MS = '1500';
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});

after(async () => {
  if (h) await h.stop();
  await forgetOurImages().catch(() => undefined);
  if (reg) await reg.stop();
  if (fake) await fake.stop();
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-img-e2e-'));
  scratch.push(d);
  return d;
}

function hearthCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(repo, 'bin/hearth.mjs'), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function token(id: string): Promise<string> {
  return (await client.workspaces.apiAccess.enable(id) as { token: string }).token;
}

/** POST /exec on the data plane with Hearth's `cwd` extension (the SDK sends only cmd). */
async function exec(id: string, body: Record<string, unknown>): Promise<{ exit_code: number; stdout: string; stderr: string }> {
  const res = await fetch(`${h.runtime}/exec`, { method: 'POST', headers: { authorization: `Bearer ${await token(id)}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return res.json() as Promise<{ exit_code: number; stdout: string; stderr: string }>;
}

async function count(): Promise<number> {
  return (await client.workspaces.list({ limit: 500 } as never) as Record<string, any>).total;
}

test('a `docker save` archive imported with `hearth images import` runs its default command with its Env and WorkingDir', { skip }, async () => {
  const img = buildImage({
    layers: [
      [...busyboxEntries(), { type: 'dir', path: 'etc/' }, { type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' }],
      [{ type: 'dir', path: 'srv/' }, { type: 'dir', path: 'srv/app/' }, { type: 'file', path: 'srv/app/msg', content: 'from the image\n' }],
    ],
    env: ['PATH=/bin', `GREETING=hello-${run}`],
    workingDir: '/srv/app',
    entrypoint: ['/bin/sh', '-c'],
    cmd: ['echo "$GREETING in $(pwd): $(cat msg)"'],
    gzip: false,
  });
  const dir = await tmp();
  const file = path.join(dir, 'app.tar');
  await fs.writeFile(file, dockerSaveArchive(img, [`${run}/app:1.0`]));

  const out = hearthCli(['images', 'import', file, '--json']);
  assert.equal(out.status, 0, out.stderr);
  const imported = JSON.parse(out.stdout);
  assert.equal(imported.format, 'docker-archive');
  assert.equal(imported.images[0].digest, img.configDigest);
  assert.deepEqual(imported.images[0].refs, [`docker.io/${run}/app:1.0`]);
  assert.match(out.stderr, /import .*app\.tar/, 'progress goes to stderr');
  ourDigests.add(img.configDigest);

  // The catalog shows it with its config; SDK search finds it.
  const listed = await client.workspaces.images.list({ search: run } as never) as Record<string, any>;
  const entry = listed.images.find((i: any) => i.id === `${run}/app:1.0`);
  assert.ok(entry, JSON.stringify(listed.images.map((i: any) => i.id)));
  assert.equal(entry.source, 'imported');
  assert.deepEqual(entry.config, { entrypoint: ['/bin/sh', '-c'], cmd: ['echo "$GREETING in $(pwd): $(cat msg)"'], env: ['PATH=/bin', `GREETING=hello-${run}`], working_dir: '/srv/app', user: 'root' });

  const total = await count();
  const ws = await client.workspaces.create({ image: `${run}/app:1.0`, config: { ttl: '10m' } } as never) as Record<string, any>;
  assert.equal(ws.ready, true, JSON.stringify(ws.provisioning));
  assert.equal(await count(), total + 1);
  // The default command, as Docker runs it: entrypoint + cmd, in WorkingDir; Env is the workspace's environment.
  const argv = [...entry.config.entrypoint, ...entry.config.cmd];
  const r = await exec(ws.id, { cmd: argv, cwd: entry.config.working_dir });
  assert.equal(r.exit_code, 0, r.stderr);
  assert.equal(r.stdout, `hello-${run} in /srv/app: from the image\n`);
  // Env reaches every process of the workspace, not only this one.
  const env = await new Runtime({ token: await token(ws.id), baseUrl: h.runtime }).exec.run(['sh', '-c', 'echo $GREETING']);
  assert.equal(env.stdout, `hello-${run}\n`);
  // Exec without a cwd runs in WorkingDir, as `docker exec` does.
  const here = await new Runtime({ token: await token(ws.id), baseUrl: h.runtime }).exec.run(['sh', '-c', 'pwd; cat msg']);
  assert.equal(here.stdout, '/srv/app\nfrom the image\n');

  // And as a workload (§13): the image's default command, Env and WorkingDir, supervised.
  const w = await client.workspaces.workloads.create(ws.id, {
    name: 'default', cmd: argv, env: entry.config.env, working_dir: entry.config.working_dir, restart_policy: 'never',
  } as never) as Record<string, any>;
  const logs = await waitUntil('the workload to print its line', async () => {
    const l = await client.workspaces.workloads.logs(ws.id, w.id) as Record<string, any>;
    return l.logs.some((e: any) => e.stream === 'stdout') ? l.logs : false;
  }, 20_000, 200);
  assert.deepEqual(logs.filter((e: any) => e.stream === 'stdout').map((e: any) => e.data.trim()), [`hello-${run} in /srv/app: from the image`]);
  await client.workspaces.delete(ws.id);
});

test('an image pushed to a loopback registry is pulled by create, and a second workspace pulls nothing', { skip }, async () => {
  const img = buildImage({
    layers: [
      [...busyboxEntries(), { type: 'dir', path: 'opt/' }, { type: 'dir', path: 'opt/a/' }, { type: 'file', path: 'opt/a/old', content: 'old' }, { type: 'file', path: 'opt/gone', content: 'x' }],
      [{ type: 'file', path: 'opt/.wh.gone' }, { type: 'dir', path: 'opt/a/' }, { type: 'file', path: 'opt/a/.wh..wh..opq' }, { type: 'file', path: 'opt/a/new', content: 'new' }],
    ],
    env: ['PATH=/bin'],
  });
  await pushImage(reg.url, `${run}/layered`, 'v1', img);
  ourDigests.add(img.configDigest);
  const ref = `${reg.host}/${run}/layered:v1`;
  const ws = await client.workspaces.create({ image: ref, config: { ttl: '10m' } } as never) as Record<string, any>;
  assert.equal(ws.ready, true, JSON.stringify(ws.provisioning));
  const r = await exec(ws.id, { cmd: ['sh', '-c', 'ls /opt /opt/a'] });
  assert.equal(r.stdout, '/opt:\na\n\n/opt/a:\nnew\n', 'whiteout and opaque dir applied');
  const logsBefore = h.logs.join('').split('pulling image').length;
  const ws2 = await client.workspaces.create({ image: ref, config: { ttl: '10m' } } as never) as Record<string, any>;
  assert.equal(ws2.ready, true);
  assert.equal(h.logs.join('').split('pulling image').length, logsBefore, 'no second pull');
  await client.workspaces.delete(ws.id);
  await client.workspaces.delete(ws2.id);
});

test('python-3.12 maps to the official image when a registry (mirror) is configured, with its real version', { skip }, async () => {
  const py = buildImage({
    layers: [[...busyboxEntries(), { type: 'dir', path: 'usr/' }, { type: 'dir', path: 'usr/local/' }, { type: 'dir', path: 'usr/local/bin/' },
      { type: 'file', path: 'usr/local/bin/python3', mode: 0o755, content: '#!/bin/sh\necho "Python $PYTHON_VERSION"\n' }]],
    env: ['PATH=/usr/local/bin:/bin', 'PYTHON_VERSION=3.12.9'],
    cmd: ['python3'],
  });
  await pushImage(reg.url, 'library/python', '3.12-slim-bookworm', py);
  ourDigests.add(py.configDigest);
  const ws = await client.workspaces.create({ image: 'python-3.12', config: { ttl: '10m' } } as never) as Record<string, any>;
  assert.equal(ws.ready, true, JSON.stringify(ws.provisioning));
  assert.equal((await exec(ws.id, { cmd: ['python3'] })).stdout, 'Python 3.12.9\n');
  const listed = await client.workspaces.images.list({ search: 'python-3.12' } as never) as Record<string, any>;
  const entry = listed.images.find((i: any) => i.id === 'python-3.12');
  assert.equal(entry.resolves_to, 'python:3.12-slim-bookworm');
  assert.equal(entry.versions.python, '3.12.9', 'the version the image really has');
  // go-1.22 is not on the mirror: the catalog's own go-1.22 (Go 1.22 from bookworm-backports) serves the name,
  // or, when this host has not built it, the refusal says how to build it. Never another Go under its name.
  const go = await client.workspaces.create({ image: 'go-1.22', config: { ttl: '5m' } } as never).then((w: any) => ({ ok: w }), (e: any) => ({ err: e }));
  if ('ok' in go) {
    assert.equal(go.ok.ready, true, JSON.stringify(go.ok.provisioning));
    assert.match((await exec(go.ok.id, { cmd: ['go', 'version'] })).stdout, /^go version go1\.22\./);
    await client.workspaces.delete(go.ok.id);
  } else {
    assert.match(`${go.err.message} ${go.err.hint ?? ''}`, /hearth setup --images go-1\.22/);
  }
  await client.workspaces.delete(ws.id);
});

test('bad input is refused and nothing is created: malformed refs, unknown tags, a hanging registry, a corrupted blob', { skip }, async () => {
  const total = await count();
  for (const bad of [`${reg.host}/Upper/x:1`, `${reg.host}/x:bad tag`, `${reg.host}/x@sha256:abc`, `${reg.host}//x`]) {
    await assert.rejects(client.workspaces.create({ image: bad } as never), (e: any) => e instanceof ValidationError && /invalid image reference/.test(e.message), bad);
  }
  await assert.rejects(client.workspaces.create({ image: `${reg.host}/${run}/layered:nope` } as never),
    (e: any) => e instanceof ValidationError && /has no manifest nope/.test(e.message));
  const t0 = Date.now();
  await assert.rejects(client.workspaces.create({ image: `${fake.host}/e2e/slow:v1` } as never),
    (e: any) => e.status === 503 && e.code === 'workspace_unavailable' && /sent nothing for 1\.5 s/.test(e.message));
  assert.ok(Date.now() - t0 < 10_000);

  const img = buildImage({ layers: [[{ type: 'file', path: 'data', content: 'z'.repeat(50_000) }]] });
  await pushImage(reg.url, `${run}/corrupt`, 'v1', img);
  const blob = registryBlobPath(reg, img.layerDigests[0]!);
  const bytes = await fs.readFile(blob);
  bytes[bytes.length >> 1]! ^= 0x55;
  await fs.writeFile(blob, bytes);
  await assert.rejects(client.workspaces.create({ image: `${reg.host}/${run}/corrupt:v1` } as never),
    (e: any) => e.status === 503 && new RegExp(`blob ${img.layerDigests[0]} from .* failed verification`).test(e.message));
  assert.equal(await count(), total);
  assert.deepEqual((await fs.readdir(paths.tmp).catch(() => [])).filter((n) => n.startsWith('blob-') || n.startsWith('oci-')), [], 'no scratch left');
});

test('an image on an unlisted loopback, link-local or private address is refused by create before any connection', { skip }, async () => {
  const total = await count();
  const port = reg.host.split(':')[1];
  for (const image of [`127.0.0.2:${port}/${run}/layered:v1`, `169.254.169.254/latest/meta-data:v1`, `10.0.0.1:5000/x/y:1`, `[::1]:${port}/${run}/layered:v1`]) {
    await assert.rejects(client.workspaces.create({ image } as never),
      (e: any) => e instanceof ValidationError && /pulling it would connect to/.test(e.message) && /not listed|only used for registries an operator listed/.test(e.message), image);
  }
  assert.equal(await count(), total);
});

test('a hostile archive is refused by `hearth images import` and the host is untouched', { skip }, async () => {
  const dir = await tmp();
  const marker = `/tmp/hearth-pwned-${run}`;
  const cases = {
    'outer-dotdot.tar': tar([{ type: 'file', path: `../../../../../..${marker}`, content: 'x' }]),
    'outer-symlink.tar': tar([{ type: 'symlink', path: 'evil', target: '/tmp' }, { type: 'file', path: `evil/${path.basename(marker)}`, content: 'x' }]),
    'layer-symlink.tar': dockerSaveArchive(buildImage({ layers: [[{ type: 'symlink', path: 'etc', target: '/tmp' }, { type: 'file', path: `etc/${path.basename(marker)}`, content: 'x' }]], gzip: false }), [`${run}/hostile:1`]),
    'not-an-image.tar': tar([{ type: 'file', path: 'hello.txt', content: 'hi' }]),
  };
  for (const [name, data] of Object.entries(cases)) {
    const file = path.join(dir, name);
    await fs.writeFile(file, data);
    const r = hearthCli(['images', 'import', file]);
    assert.equal(r.status, 1, `${name}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, name === 'not-an-image.tar' ? /neither manifest\.json/ : /unsafe image layer: entry/, name);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, 'a message, not a stack trace');
    await assert.rejects(fs.access(marker), /ENOENT/, `${name}: nothing written outside`);
  }
  assert.ok(!(await listRefs(paths)).some((r) => r.ref.includes(`${run}/hostile`)));
});
