/**
 * Disks for the microVM, each built once and keyed by content hash:
 *
 * - the base disk of an image: its layers (top first, as overlayfs takes
 *   them) flattened through a read-only overlay mount — so whiteouts of
 *   pulled OCI layers are honoured — into an ext4 file made by
 *   `mkfs.ext4 -d` without mounting the target. One per (image, size): the
 *   filesystem is made at the workspace's `disk_size_mb`, sparse (lazy
 *   inode tables and journal, the guest mounts with noinit_itable), so a
 *   4 GiB disk of a 150 MB image takes ~150 MB on the host. Every
 *   workspace's root disk is a qcow2 overlay on it (`qemu-img create -b`).
 * - the agent disk: the agent drive + the guest launcher + busybox, as a
 *   read-only ext4 without a journal, attached read-only to every VM.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { exists, scratchDir } from '../../../images/atomic.ts';
import { ImageBuildError } from '../../../images/errors.ts';
import { run } from '../../../images/exec.ts';
import { hashFile, hashKey } from '../../../images/hash.ts';
import { shortKey } from '../../../images/paths.ts';
import type { AgentDrive, ResolvedImage } from '../../../images/types.ts';
import { vmPaths } from './paths.ts';

export const BASE_DISK_VERSION = 2;
export const AGENT_DISK_VERSION = 2;

export interface BuiltFile {
  file: string;
  key: string;
  cached: boolean;
}

/**
 * Build `final` through a temp file in `tmpRoot` and publish it with
 * link(2), which — unlike rename — never replaces an existing file: when
 * two hearthds build the same artifact at once, the first one wins and the
 * file never changes under a VM or template that already uses it (a base
 * disk swapped under a template's page cache corrupts the restored guest).
 */
export async function buildFileOnce(final: string, tmpRoot: string, build: (tmpFile: string) => Promise<void>): Promise<boolean> {
  if (await exists(final)) return true;
  await fs.mkdir(tmpRoot, { recursive: true });
  await fs.mkdir(path.dirname(final), { recursive: true });
  const tmp = path.join(tmpRoot, `${path.basename(final)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    await build(tmp);
    try {
      await fs.link(tmp, final);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return true;
      throw e;
    }
    return false;
  } finally {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** Pure: the base disk's key. */
export function baseDiskKey(image: Pick<ResolvedImage, 'digest' | 'layers'>, sizeMb: number): string {
  return hashKey({ recipe: BASE_DISK_VERSION, digest: image.digest, layers: image.layers.map((l) => path.basename(path.dirname(l))), sizeMb });
}

/** Pure: a UUID derived from a content key, so the same inputs make the same filesystem. */
export function uuidFromKey(key: string): string {
  const h = key.replace(/^sha256:/, '').slice(0, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Pure: mkfs.ext4 argv for a base disk of `sizeMb` filled from `srcDir`.
 * UUID and directory hash seed come from the key (and E2FSPROGS_FAKE_TIME
 * pins the timestamps, see mkfsEnv): rebuilding gives the same bytes.
 */
export function mkfsBaseArgs(srcDir: string, file: string, sizeMb: number, key: string): string[] {
  const uuid = uuidFromKey(key);
  return [
    '-q', '-F', '-t', 'ext4', '-L', 'hearth-root', '-m', '0', '-U', uuid,
    '-E', `root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard,hash_seed=${uuid}`,
    '-d', srcDir, file, `${sizeMb}M`,
  ];
}

/** Environment for reproducible mkfs runs. */
export function mkfsEnv(): NodeJS.ProcessEnv {
  return { ...process.env, E2FSPROGS_FAKE_TIME: '1', SOURCE_DATE_EPOCH: '1' };
}

async function treeSizeMb(dir: string): Promise<number> {
  const r = await run('du', ['-sm', '--apparent-size', dir]);
  return Number(r.stdout.split('\t')[0]) || 0;
}

export async function ensureBaseDisk(image: ResolvedImage, sizeMb: number, opts: { artifactsDir?: string; log?: (l: string) => void } = {}): Promise<BuiltFile> {
  if (!image.layers.length) throw new ImageBuildError(`base disk ${image.id}`, 'the image has no layers');
  const paths = vmPaths(opts.artifactsDir);
  const key = baseDiskKey(image, sizeMb);
  const file = path.join(paths.base, `${image.id}-${sizeMb}m-${shortKey(key)}.raw`);
  const t0 = Date.now();
  const cached = await buildFileOnce(file, paths.tmp, async (tmp) => {
    let src = image.layers[0]!;
    let mnt: string | null = null;
    if (image.layers.length > 1) {
      mnt = await scratchDir(paths.tmp, 'flatten');
      await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${image.layers.join(':')}`, mnt]);
      src = mnt;
    }
    try {
      const need = await treeSizeMb(src);
      if (need * 1.1 + 64 > sizeMb) throw new ImageBuildError(`base disk ${image.id}`, `the image needs ~${need} MB; disk_size_mb ${sizeMb} is too small`, `use disk_size_mb >= ${Math.ceil(need * 1.1 + 64)}`);
      await run('mkfs.ext4', mkfsBaseArgs(src, tmp, sizeMb, key), { env: mkfsEnv() });
    } finally {
      if (mnt) {
        await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt!]));
        await fs.rm(mnt, { recursive: true, force: true });
      }
    }
  });
  opts.log?.(`base disk ${image.id} ${sizeMb} MB: ${cached ? 'CACHED' : `built in ${Date.now() - t0} ms`}`);
  return { file, key, cached };
}

/** Pure: the agent disk's key from the drive's hash and the extra files' hashes. */
export function agentDiskKey(agentHash: string, launcherSha: string, busyboxSha: string, reseedSha: string): string {
  return hashKey({ recipe: AGENT_DISK_VERSION, agent: agentHash, launcher: launcherSha, busybox: busyboxSha, reseed: reseedSha });
}

/** The guest programs beside the agent drive: the launcher bundle, busybox and the reseed helper. */
export interface GuestPrograms {
  launcher: string;
  busybox: string;
  reseed: string;
}

export async function ensureAgentDisk(agent: AgentDrive, programs: GuestPrograms, opts: { artifactsDir?: string; log?: (l: string) => void } = {}): Promise<BuiltFile> {
  const paths = vmPaths(opts.artifactsDir);
  const { launcher, busybox, reseed } = programs;
  const key = agentDiskKey(agent.hash, await hashFile(launcher), await hashFile(busybox), await hashFile(reseed));
  const file = path.join(paths.agent, `${shortKey(key)}.ext4`);
  const cached = await buildFileOnce(file, paths.tmp, async (tmp) => {
    const stage = await scratchDir(paths.tmp, 'agent-disk');
    try {
      // Hard links when the drive is on the same filesystem (it is: both under the artifacts dir).
      const tree = path.join(stage, 'tree');
      await run('cp', ['-al', agent.dir, tree]).catch(() => run('cp', ['-a', agent.dir, tree]));
      await fs.mkdir(path.join(tree, 'vm'), { mode: 0o755 });
      await fs.copyFile(launcher, path.join(tree, 'vm', 'launch.mjs'));
      for (const [name, file] of [['busybox', busybox], ['reseed', reseed]] as const) {
        await fs.copyFile(file, path.join(tree, 'vm', name));
        await fs.chmod(path.join(tree, 'vm', name), 0o755);
      }
      const size = Math.ceil((await treeSizeMb(tree)) * 1.15) + 16;
      const uuid = uuidFromKey(key);
      await run('mkfs.ext4', ['-q', '-F', '-t', 'ext4', '-L', 'hearth-agent', '-m', '0', '-U', uuid, '-O', '^has_journal', '-E', `root_owner=0:0,hash_seed=${uuid}`, '-d', tree, tmp, `${size}M`], { env: mkfsEnv() });
    } finally {
      await fs.rm(stage, { recursive: true, force: true });
    }
  });
  opts.log?.(`agent disk ${shortKey(key)}: ${cached ? 'CACHED' : 'built'}`);
  return { file, key, cached };
}
