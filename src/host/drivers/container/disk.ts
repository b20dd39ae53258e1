/**
 * A container workspace's disk: a sparse ext4 image of disk_size_mb
 * (`<dir>/disk.img`), loop-mounted at `<dir>/disk` while the workspace runs
 * (or while a snapshot is copied), holding overlay's upper and work dirs.
 * The kernel enforces the size: a write past it fails with ENOSPC inside
 * the workspace, and never touches the file system that holds the data dir
 * (SQLite, other workspaces). overlayfs answers statfs from its upper
 * layer, so `df /` inside shows the image's size.
 *
 * `mount -o loop` sets the loop device's autoclear flag: unmounting the
 * image frees its loop device, so a mount is the only thing to undo. The
 * loop device then switches to direct I/O on its backing file.
 *
 * Growth (disk_size_mb raised): the image file is extended and ext4 grown
 * with resize2fs, online when mounted (the kernel's online resize needs
 * CAP_SYS_RESOURCE: without it, as on some sandboxed hosts, the growth is
 * kept pending and done offline, e2fsck + resize2fs, at the next mount), and
 * offline at the next mount of a stopped workspace. Shrinking is refused by
 * the control plane (update.ts).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostRun } from '../../exec.ts';
import { copyTree } from './layer-copy.ts';
import { isMountpoint, unmount } from './mounts.ts';

const MIB = 1024 * 1024;
/** Below this, ext4's own metadata (journal, inode tables) leaves too little room. */
export const MIN_DISK_MB = 64;

export interface DiskPaths {
  /** The sparse ext4 image file. */
  image: string;
  /** Where it is mounted. */
  mount: string;
  upper: string;
  work: string;
  /** The console log while running (on the disk, outside the overlay: invisible inside). */
  console: string;
}

export function diskPaths(dir: string): DiskPaths {
  const mount = join(dir, 'disk');
  return { image: join(dir, 'disk.img'), mount, upper: join(mount, 'upper'), work: join(mount, 'work'), console: join(mount, 'console.log') };
}

/** Whether the workspace has a writable layer at all (a disk image, or an upper dir from before disks). */
export function hasDisk(dir: string): boolean {
  return existsSync(join(dir, 'disk.img')) || existsSync(join(dir, 'upper'));
}

/** mkfs.ext4 options: no root reserve (the workspace's root gets every block), lazy init (tens of ms for GBs). */
function mkfsArgs(image: string): string[] {
  // 4 KiB blocks whatever the size (mke2fs picks 1 KiB for small images, and ext4 cannot grow those online).
  return ['-q', '-F', '-b', '4096', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1,nodiscard', '-L', 'hearth-ws', image];
}

/**
 * Make sure the disk exists (created at `sizeMb` on first use), is mounted,
 * and is at least `sizeMb` big, with upper and work dirs in it. Returns
 * whether this call mounted it (the caller then owns the unmount).
 */
export async function ensureDisk(dir: string, sizeMb: number, templates?: string, opts: { directIo?: boolean } = {}): Promise<{ mounted: boolean; created: boolean }> {
  const d = diskPaths(dir);
  const bytes = diskBytes(sizeMb);
  let created = false;
  if (!existsSync(d.image)) {
    const tmp = `${d.image}.new`;
    await rm(tmp, { force: true });
    try {
      if (templates) await takeSpare(templates, sizeMb, tmp);
      else await makeImage(tmp, bytes);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    await rename(tmp, d.image);
    created = true;
  }
  let mounted = false;
  if (!(await isMountpoint(d.mount))) {
    if (!created && ((await stat(d.image)).size < bytes || existsSync(`${d.image}.grow`))) await growOffline(d.image, bytes);
    await mkdir(d.mount, { recursive: true, mode: 0o700 });
    await hostRun('mount', ['-t', 'ext4', '-o', 'loop,noatime', d.image, d.mount]);
    mounted = true;
    // Direct I/O on the backing file: no second copy in the page cache, and an fsync inside costs
    // what it costs on the host (buffered loop writes measured 1.3-2.5x slower). The switch freezes the
    // device's queue for ~20 ms, so it happens off the start's critical path; a data dir whose file
    // system has no O_DIRECT (tmpfs) keeps buffered loop I/O.
    if (opts.directIo) {
      const dev = await loopDeviceOf(d.mount);
      if (dev) void hostRun('losetup', ['--direct-io=on', dev]).catch(() => undefined);
    }
  }
  try {
    if (!mounted && (await stat(d.image)).size < bytes) await growDisk(dir, sizeMb);
    await Promise.all([mkdir(d.upper, { recursive: true, mode: 0o755 }), mkdir(d.work, { recursive: true, mode: 0o700 })]);
    if (created) await adoptLegacyUpper(dir, d);
  } catch (e) {
    if (mounted) await unmount(d.mount).catch(() => undefined);
    throw e;
  }
  return { mounted, created };
}

/** A fresh, empty ext4 image of `bytes` (sparse: blocks are allocated as the workspace writes). */
async function makeImage(file: string, bytes: number): Promise<void> {
  await writeFile(file, '', { mode: 0o600 });
  await truncate(file, bytes);
  await hostRun('mkfs.ext4', mkfsArgs(file));
}

/**
 * The empty image of a size, made once per size in `templates`: copying
 * its few MB of metadata (cp --sparse, or a reflink where the data dir's
 * file system shares extents) is several times faster than mkfs of a
 * multi-GB image. Every copy has the same file system UUID, which ext4 does
 * not mind.
 */
export async function diskTemplate(templates: string, sizeMb: number): Promise<string> {
  const file = join(templates, `ext4-${sizeMb}m.img`);
  if (existsSync(file)) return file;
  // Creates of one size at once in this process share one mkfs.
  let making = templatesInFlight.get(file);
  if (!making) {
    making = makeTemplate(templates, file, sizeMb).finally(() => templatesInFlight.delete(file));
    templatesInFlight.set(file, making);
  }
  return making;
}

const templatesInFlight = new Map<string, Promise<string>>();

async function makeTemplate(templates: string, file: string, sizeMb: number): Promise<string> {
  await mkdir(templates, { recursive: true, mode: 0o700 });
  // A name no other maker (another process, the same millisecond) can share.
  const tmp = `${file}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 10)}.new`;
  try {
    await makeImage(tmp, diskBytes(sizeMb));
    await rename(tmp, file); // concurrent makers: the last rename wins, each result is a valid template
  } finally {
    await rm(tmp, { force: true });
  }
  return file;
}

/**
 * A new image of the size at `dst`: the spare copy made after the previous
 * create when there is one (a rename), else a copy of the template now.
 * Either way a spare for the next create is copied in the background, so
 * the copy is off a create's critical path.
 */
async function takeSpare(templates: string, sizeMb: number, dst: string): Promise<void> {
  const template = await diskTemplate(templates, sizeMb);
  const spare = `${template}.spare`;
  const took = await rename(spare, dst).then(() => true, () => false); // atomic: of two creates, one gets it
  if (!took) await sparseCopy(template, dst);
  const next = `${spare}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}`;
  void sparseCopy(template, next)
    .then(() => rename(next, spare))
    .catch(() => rm(next, { force: true }).catch(() => undefined));
}

async function sparseCopy(src: string, dst: string): Promise<void> {
  await hostRun('cp', ['--sparse=always', '--reflink=auto', src, dst]);
}

/** A workspace made before disks kept its upper dir on the host: move it into the new disk (once). */
async function adoptLegacyUpper(dir: string, d: DiskPaths): Promise<void> {
  const legacy = join(dir, 'upper');
  if (!existsSync(legacy)) return;
  await rm(d.upper, { recursive: true, force: true });
  await copyTree(legacy, d.upper);
  await Promise.all([rm(legacy, { recursive: true, force: true }), rm(join(dir, 'work'), { recursive: true, force: true })]);
}

/** Unmount the disk (which frees its loop device). Not mounted = done. */
export async function unmountDisk(dir: string): Promise<void> {
  await unmount(diskPaths(dir).mount);
}

/** Image bytes for a disk of `sizeMb`. */
export function diskBytes(sizeMb: number): number {
  if (!Number.isInteger(sizeMb) || sizeMb < MIN_DISK_MB) throw new Error(`disk size must be an integer >= ${MIN_DISK_MB} MB (got ${sizeMb})`);
  return sizeMb * MIB;
}

export type GrowResult = 'grown' | 'next-start' | 'unchanged';

/**
 * Grow a mounted disk to `sizeMb` (never shrinks): mark the growth pending,
 * extend the image file, tell its loop device, grow ext4 online. Without the
 * privilege for an online resize (EPERM), or with the disk not mounted, the
 * growth stays pending for the next mount (ensureDisk).
 */
export async function growDisk(dir: string, sizeMb: number): Promise<GrowResult> {
  const d = diskPaths(dir);
  const bytes = diskBytes(sizeMb);
  const st = await stat(d.image).catch(() => null);
  if (!st) return 'next-start'; // no disk yet: it is created at the requested size
  const marker = `${d.image}.grow`;
  if (st.size >= bytes && !existsSync(marker)) return 'unchanged';
  const dev = await loopDeviceOf(d.mount);
  if (!dev) return 'next-start';
  await writeFile(marker, String(Math.max(st.size, bytes)));
  if (st.size < bytes) await truncate(d.image, bytes);
  await hostRun('losetup', ['-c', dev]);
  try {
    await hostRun('resize2fs', [dev], { timeoutMs: 10 * 60_000 });
  } catch (e) {
    if (/Permission denied|Operation not permitted/.test((e as Error).message)) return 'next-start';
    throw e;
  }
  await rm(marker, { force: true });
  return 'grown';
}

/** Grow an unmounted image to `bytes`: extend the file, check it (resize2fs insists), resize. */
async function growOffline(image: string, bytes: number): Promise<void> {
  const marker = `${image}.grow`;
  await writeFile(marker, String(bytes));
  if ((await stat(image)).size < bytes) await truncate(image, bytes);
  // e2fsck -p exits 1 when it fixed something (still fine), 2 when a reboot would be needed (not for an image).
  await hostRun('e2fsck', ['-f', '-p', image], { okCodes: [0, 1, 2], timeoutMs: 10 * 60_000 });
  await hostRun('resize2fs', [image], { timeoutMs: 10 * 60_000 });
  await rm(marker, { force: true });
}

/** The block device mounted at `mount` (a /dev/loopN), from mountinfo. */
export async function loopDeviceOf(mount: string): Promise<string | null> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[4] !== mount) continue;
    const sep = f.indexOf('-');
    const src = f[sep + 2];
    if (src?.startsWith('/dev/loop')) return src;
  }
  return null;
}

/** Run `fn` with the disk mounted, unmounting afterwards when this call mounted it. */
export async function withDisk<T>(dir: string, sizeMb: number, fn: (d: DiskPaths) => Promise<T>): Promise<T> {
  const { mounted } = await ensureDisk(dir, sizeMb);
  try {
    return await fn(diskPaths(dir));
  } finally {
    if (mounted) await unmountDisk(dir);
  }
}
