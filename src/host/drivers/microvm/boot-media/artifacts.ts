/**
 * Everything a microVM boots from, built or found once per hearthd (and by
 * `hearth setup`): the guest kernel, Hearth's initramfs, the guest launcher
 * bundle and the agent disk. Base disks are per image and size, built on
 * first use (ensureBaseDisk), then cached like the rest.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import { LAUNCHER_ENTRY } from '../../../../agent/bundle.ts';
import { hashKey, sha256Hex } from '../../../images/hash.ts';
import { shortKey } from '../../../images/paths.ts';
import type { AgentDrive } from '../../../images/types.ts';
import { ensureAgentDisk, buildFileOnce } from './disks.ts';
import { buildInitramfs, INITRAMFS_RECIPE_VERSION } from './initramfs.ts';
import { ensureGuestKernel, type GuestKernel } from './kernel.ts';
import { vmPaths } from './paths.ts';
import { ensureReseedHelper } from './reseed.ts';

export const BUSYBOX_STATIC = '/bin/busybox';

export interface VmArtifacts {
  kernel: GuestKernel;
  initramfs: string;
  agentDisk: string;
  /** Hash over kernel, initramfs and agent disk: part of every template key. */
  key: string;
}

/** Bundle the guest launcher (it imports the agent's server) into one ESM file. */
export async function bundleLauncher(outFile: string): Promise<void> {
  await build({
    entryPoints: [LAUNCHER_ENTRY],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
    // Same externals as the agent bundle: the PTY addon sits in node_modules/ on the drive.
    external: ['@lydell/node-pty', 'bufferutil', 'utf-8-validate'],
    banner: { js: "import { createRequire as __hearthCreateRequire } from 'node:module'; const require = __hearthCreateRequire(import.meta.url);" },
  });
}

export async function ensureVmArtifacts(agent: AgentDrive, opts: { artifactsDir?: string; log?: (l: string) => void; offline?: boolean } = {}): Promise<VmArtifacts> {
  const log = opts.log ?? (() => undefined);
  const paths = vmPaths(opts.artifactsDir);
  const kernel = await ensureGuestKernel({ artifactsDir: opts.artifactsDir, log, offline: opts.offline });

  const cpio = await buildInitramfs({ modulesDir: kernel.modulesDir, busybox: BUSYBOX_STATIC });
  const initramfs = path.join(paths.initramfs, `${shortKey(sha256Hex(cpio))}.cpio`);
  const cachedInit = await buildFileOnce(initramfs, paths.tmp, (tmp) => fs.writeFile(tmp, cpio));
  log(`initramfs v${INITRAMFS_RECIPE_VERSION} ${path.basename(initramfs)}: ${cachedInit ? 'CACHED' : 'built'} (${(cpio.length / 1e6).toFixed(1)} MB)`);

  await fs.mkdir(paths.tmp, { recursive: true });
  const launcher = path.join(paths.tmp, `launch.${process.pid}.mjs`);
  try {
    await bundleLauncher(launcher);
    const reseed = await ensureReseedHelper({ artifactsDir: opts.artifactsDir, log });
    const disk = await ensureAgentDisk(agent, { launcher, busybox: BUSYBOX_STATIC, reseed }, { artifactsDir: opts.artifactsDir, log });
    return {
      kernel, initramfs, agentDisk: disk.file,
      key: hashKey({ kernel: `${kernel.package}_${kernel.version}`, initramfs: path.basename(initramfs), agent: disk.key }),
    };
  } finally {
    await fs.rm(launcher, { force: true });
  }
}
