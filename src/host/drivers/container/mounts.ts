/**
 * The workspace rootfs: an overlay of the image layers (read-only, shared by
 * every workspace of that image) under the workspace's own upper dir, which
 * persists across stop/start. Plus the few /proc/self/mountinfo reads the
 * driver needs to stay idempotent without remembering anything.
 */
import { readFile } from 'node:fs/promises';
import { hostRun } from '../../exec.ts';

export interface OverlayDirs {
  /** Image layers, TOP FIRST (ResolvedImage.layers). */
  lower: string[];
  upper: string;
  work: string;
}

/**
 * The overlay mount options. Pure. `index=off` keeps a persisted upper dir
 * mountable after its image layers are rebuilt (with index=on the kernel
 * refuses an upper dir whose recorded lower origin changed).
 */
export function overlayOptions(d: OverlayDirs): string {
  if (!d.lower.length) throw new Error('overlay needs at least one image layer');
  for (const p of [...d.lower, d.upper, d.work]) {
    if (!p.startsWith('/') || /[,:\s\\]/.test(p)) throw new Error(`overlay path ${JSON.stringify(p)} must be absolute without commas, colons, spaces or backslashes`);
  }
  return `lowerdir=${d.lower.join(':')},upperdir=${d.upper},workdir=${d.work},index=off`;
}

export async function mountOverlay(target: string, d: OverlayDirs): Promise<void> {
  await hostRun('mount', ['-t', 'overlay', 'overlay', '-o', overlayOptions(d), target]);
}

/** Unmount, retrying briefly while busy, then lazily as a last resort. Not mounted = done. */
export async function unmount(target: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    if (!(await isMountpoint(target))) return;
    const r = await hostRun('umount', [target], { okCodes: [0, 1, 32] });
    if (r.code === 0 || /not mounted/.test(r.stderr)) return;
    if (attempt >= 5) {
      await hostRun('umount', ['-l', target]);
      return;
    }
    await new Promise((res) => setTimeout(res, 20 * (attempt + 1)));
  }
}

/** Mount points of the current mount namespace (mountinfo field 5, octal escapes decoded). */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').filter(Boolean).map((line) => decodeMountPath(line.split(' ')[4] ?? ''));
}

export function decodeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function isMountpoint(path: string): Promise<boolean> {
  return (await mountPoints()).includes(path);
}

/** Mount points at or below `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return (await mountPoints()).filter((m) => m === dir || m.startsWith(prefix));
}
