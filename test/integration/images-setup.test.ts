/**
 * `hearth setup` for real, into the shared artifacts dir (default
 * /var/lib/hearth/artifacts, or HEARTH_ARTIFACTS_DIR), so the images are
 * built once per host and every later run is the CACHED path.
 *
 * Network: a cold run reaches the host's Debian mirror (mmdebstrap) and npm
 * registry (`npm pack`) through their ordinary clients, the only registries
 * the project may use; nothing else. Every command run inside a built tree
 * runs under `unshare --net` (no network at all).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isRoot } from '../helpers/root.ts';
import { runSetup, type SetupReport } from '../../src/host/setup/index.ts';
import { listCatalog, readImageManifest, resolveImage } from '../../src/host/images/store.ts';
import { artifactsRoot } from '../../src/host/images/paths.ts';
import { ensureAgentDrive } from '../../src/host/images/agent-drive.ts';

const skip = isRoot ? false : 'needs root: mmdebstrap --mode=root, mounts and chroot (CI runs as root)';
const artifactsDir = artifactsRoot();
const CLEAN_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8' };

const mounts: string[] = [];
const scratch: string[] = [];
after(() => {
  for (const m of mounts.reverse()) execFileSync('umount', [m]);
  for (const d of scratch) execFileSync('rm', ['-rf', '--one-file-system', d]);
  const left = execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).split('\n').filter((t) => t.includes('/hearth-images-'));
  assert.deepEqual(left, [], 'mounts left behind');
});

async function tmpdir(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-images-'));
  scratch.push(d);
  return d;
}

function mount(args: string[], target: string) {
  execFileSync('mount', [...args, target]);
  mounts.push(target);
}

/** Run a command chrooted into `root` with no network. */
function inRoot(root: string, argv: string[]): string {
  return execFileSync('unshare', ['--net', 'chroot', root, ...argv], { encoding: 'utf8', env: CLEAN_ENV }).trim();
}

/** The image's layers stacked read-only (as the container driver does, minus the writable layer). */
async function stacked(layers: string[]): Promise<string> {
  const dir = await tmpdir();
  if (layers.length === 1) return layers[0]!;
  mount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${layers.join(':')}`], dir);
  return dir;
}

let first: SetupReport;
const lines: string[] = [];

test('setup builds (or finds) everything, and a second run is all CACHED', { skip, timeout: 20 * 60_000 }, async () => {
  first = await runSetup({ artifactsDir, log: (l) => lines.push(l) });
  assert.deepEqual(first.errors, [], lines.join('\n'));
  assert.ok(first.ok);
  assert.deepEqual(first.images.map((i) => i.id), ['debian-12', 'node-20', 'python-3.11']);

  const again: string[] = [];
  const second = await runSetup({ artifactsDir, log: (l) => again.push(l) });
  assert.ok(second.ok, again.join('\n'));
  assert.equal(second.node?.cached, true);
  assert.equal(second.agent?.cached, true);
  assert.equal(second.agent?.hash, first.agent?.hash);
  for (const img of second.images) assert.ok(img.cached, `${img.id} rebuilt on the second run`);
  assert.deepEqual(second.images.map((i) => i.digest), first.images.map((i) => i.digest));
  // node runtime, agent drive, three images (other steps, e.g. microvm artifacts, log their own lines).
  assert.equal(again.filter((l) => /CACHED/.test(l) && /node runtime|agent drive [0-9a-f]{16}:|✓ image /.test(l)).length, 5, again.join('\n'));
});

test('every catalog image is available and resolves to real layer dirs', { skip }, async () => {
  const catalog = await listCatalog({ artifactsDir });
  const available = new Map(catalog.filter((c) => c.source === 'catalog').map((c) => [c.id, c.available]));
  // The default set is built by a plain `hearth setup`; the others (go-1.22, rust-1, postgres-16) by `--images all`.
  for (const id of ['debian-12', 'node-20', 'python-3.11']) assert.equal(available.get(id), true, `${id} is built by hearth setup`);
  for (const [id, listed] of available) {
    assert.equal(listed, await resolveImage(id, { artifactsDir }).then(() => true, () => false), `${id}: the listing says what resolving does`);
  }
  const node = await resolveImage('node-20', { artifactsDir });
  assert.equal(node.layers.length, 2);
  for (const l of node.layers) assert.ok((await fs.stat(l)).isDirectory(), l);
  assert.ok((await fs.stat(path.join(node.layers[0]!, 'usr/local/bin/node'))).isFile());
  assert.deepEqual(await resolveImage('hearth/debian:12', { artifactsDir }).then((d) => d.layers), [node.layers[1]]);
  assert.equal((await resolveImage('python', { artifactsDir })).id, 'python-3.11');
});

test('each image has what runc expects: plain resolv.conf/hosts/hostname, empty /.hearth, /tmp 1777', { skip }, async () => {
  for (const id of ['debian-12', 'node-20', 'python-3.11']) {
    const img = await resolveImage(id, { artifactsDir });
    const base = img.layers[img.layers.length - 1]!;
    for (const f of ['etc/resolv.conf', 'etc/hosts', 'etc/hostname']) assert.ok((await fs.lstat(path.join(base, f))).isFile(), `${id}: ${f}`);
    assert.equal(await fs.readFile(path.join(base, 'etc/resolv.conf'), 'utf8'), '', `${id}: build host's resolv.conf leaked`);
    assert.deepEqual(await fs.readdir(path.join(base, '.hearth')), []);
    assert.equal((await fs.stat(path.join(base, 'tmp'))).mode & 0o7777, 0o1777);
    for (const l of img.layers.slice(0, -1)) await assert.rejects(fs.lstat(path.join(l, '.hearth')), `${id}: upper layer shadows /.hearth`);
  }
});

test('the versions in the manifests are what the images really run', { skip }, async () => {
  const debian = (await readImageManifest('debian-12', { artifactsDir }))!;
  const root = await stacked((await resolveImage('debian-12', { artifactsDir })).layers);
  assert.equal(inRoot(root, ['cat', '/etc/debian_version']), debian.versions.debian);
  assert.match(debian.versions.debian!, /^12\./);

  const node = (await readImageManifest('node-20', { artifactsDir }))!;
  const nroot = await stacked((await resolveImage('node-20', { artifactsDir })).layers);
  assert.equal(inRoot(nroot, ['node', '-p', 'process.versions.node']), node.versions.node);
  assert.equal(inRoot(nroot, ['npm', '--version']), node.versions.npm);
  assert.equal(inRoot(nroot, ['cat', '/etc/debian_version']), node.versions.debian);
  assert.match(node.versions.node!, /^20\./);

  const py = (await readImageManifest('python-3.11', { artifactsDir }))!;
  const proot = await stacked((await resolveImage('python-3.11', { artifactsDir })).layers);
  assert.equal(inRoot(proot, ['python3', '-c', 'import platform; print(platform.python_version())']), py.versions.python);
  assert.match(py.versions.python!, /^3\.11\./);
  assert.match(inRoot(proot, ['python3', '-m', 'pip', '--version']), new RegExp(`^pip ${py.versions.pip!.replace(/\./g, '\\.')} `));
});

test('the node runtime runs through its own loader and libraries', { skip }, async () => {
  const dir = first?.node?.dir;
  assert.ok(dir, 'setup reported no node runtime');
  const v = execFileSync(path.join(dir, 'lib/ld-linux-x86-64.so.2'), ['--library-path', path.join(dir, 'lib'), path.join(dir, 'bin/node'), '-p', 'process.version'], { encoding: 'utf8', env: CLEAN_ENV }).trim();
  assert.equal(v, `v${first.node!.version}`);
  const libs = (await fs.readdir(path.join(dir, 'lib'))).sort();
  for (const need of ['ld-linux-x86-64.so.2', 'libc.so.6', 'libgcc_s.so.1', 'libm.so.6', 'libstdc++.so.6']) assert.ok(libs.includes(need), need);
});

test('the agent drive runs its own node through its loader, even where the guest has no libc', { skip }, async () => {
  const drive = first?.agent ?? (await ensureAgentDrive({ artifactsDir }));
  const record = JSON.parse(await fs.readFile(path.join(drive.dir, 'drive.json'), 'utf8')) as { hash: string; node: { version: string } };
  assert.equal(record.hash, drive.hash);
  for (const f of ['bin/node', 'bin/tini', 'lib/ld-linux-x86-64.so.2', 'lib/libc.so.6', 'lib/libstdc++.so.6', 'agent.mjs']) {
    assert.ok((await fs.stat(path.join(drive.dir, f))).isFile(), f);
  }
  const onHost = execFileSync(path.join(drive.dir, 'lib/ld-linux-x86-64.so.2'), ['--library-path', path.join(drive.dir, 'lib'), path.join(drive.dir, 'bin/node'), '-p', 'process.versions.node'], { encoding: 'utf8', env: CLEAN_ENV }).trim();
  assert.equal(onHost, record.node.version);

  // A root with nothing but busybox: no libc, no loader. The drive brings its own.
  const bare = await tmpdir();
  await fs.mkdir(path.join(bare, 'bin'));
  await fs.mkdir(path.join(bare, '.hearth'));
  await fs.copyFile('/bin/busybox', path.join(bare, 'bin/busybox'));
  mount(['--bind', drive.dir], path.join(bare, '.hearth'));
  execFileSync('mount', ['-o', 'remount,bind,ro', path.join(bare, '.hearth')]);
  const argv = ['/.hearth/lib/ld-linux-x86-64.so.2', '--library-path', '/.hearth/lib', '/.hearth/bin/node', '-p', 'process.versions.node'];
  assert.equal(inRoot(bare, argv), record.node.version);
  assert.equal(inRoot(bare, ['/.hearth/bin/tini', '-s', '--', ...argv]), record.node.version);
});
