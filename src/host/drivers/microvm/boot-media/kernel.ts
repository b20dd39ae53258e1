/**
 * The guest kernel: Debian's `linux-image-cloud-amd64` (the metapackage
 * names the versioned image package). Fetched with `apt-get download`,
 * which checks the .deb against the hashes in the signed Release/Packages
 * indexes of the host's own apt sources (no mirror named here), extracted
 * with `dpkg-deb -x` into `vm/kernel/<package>_<version>/`. We keep the
 * bzImage (boots on microvm with the default option ROMs, docs/host-facts.md) and
 * the modules the initramfs needs.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { buildOnce, exists, scratchDir } from '../../../images/atomic.ts';
import { ImageBuildError } from '../../../images/errors.ts';
import { run } from '../../../images/exec.ts';
import { vmPaths } from './paths.ts';

export const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';

export interface GuestKernel {
  /** e.g. `linux-image-6.1.0-56-cloud-amd64` */
  package: string;
  version: string;
  /** uname -r inside the guest, e.g. `6.1.0-56-cloud-amd64`. */
  release: string;
  vmlinuz: string;
  modulesDir: string;
  dir: string;
  cached: boolean;
}

/** Pure: the versioned image package from `apt-cache depends` output. */
export function parseKernelDepends(stdout: string): string | null {
  const m = /Depends:\s*(linux-image-[0-9][^\s<>]*)/.exec(stdout);
  return m ? m[1]! : null;
}

/** Pure: the candidate version from `apt-cache policy` output. */
export function parseCandidate(stdout: string): string | null {
  const m = /Candidate:\s*(\S+)/.exec(stdout);
  return m && m[1] !== '(none)' ? m[1]! : null;
}

async function resolvePackage(log: (l: string) => void): Promise<{ pkg: string; version: string }> {
  const tryResolve = async () => {
    const dep = parseKernelDepends((await run('apt-cache', ['depends', KERNEL_METAPACKAGE], { allowFailure: true })).stdout);
    if (!dep) return null;
    const version = parseCandidate((await run('apt-cache', ['policy', dep], { allowFailure: true })).stdout);
    return version ? { pkg: dep, version } : null;
  };
  let r = await tryResolve();
  if (!r) {
    log(`apt does not know ${KERNEL_METAPACKAGE} yet: apt-get update`);
    await run('apt-get', ['update', '-qq'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    r = await tryResolve();
  }
  if (!r) throw new ImageBuildError('guest kernel', `apt cannot resolve ${KERNEL_METAPACKAGE}`, 'check the host\'s apt sources (bookworm main)');
  return r;
}

/** The newest kernel already extracted (for hosts that cannot reach apt right now). */
async function newestExtracted(root: string): Promise<string | null> {
  const names = (await fs.readdir(root).catch(() => [] as string[])).filter((n) => n.startsWith('linux-image-')).sort();
  return names.length ? path.join(root, names[names.length - 1]!) : null;
}

export async function kernelAt(dir: string, cached: boolean): Promise<GuestKernel> {
  const meta = JSON.parse(await fs.readFile(path.join(dir, 'kernel.json'), 'utf8')) as { package: string; version: string; release: string };
  return {
    ...meta, dir, cached,
    vmlinuz: path.join(dir, 'boot', `vmlinuz-${meta.release}`),
    modulesDir: path.join(dir, 'lib', 'modules', meta.release),
  };
}

export async function ensureGuestKernel(opts: { artifactsDir?: string; log?: (l: string) => void; offline?: boolean }): Promise<GuestKernel> {
  const log = opts.log ?? (() => undefined);
  const paths = vmPaths(opts.artifactsDir);
  if (opts.offline) {
    const dir = await newestExtracted(paths.kernels);
    if (!dir) throw new ImageBuildError('guest kernel', 'no guest kernel has been fetched', 'run `hearth setup` (as root)');
    return kernelAt(dir, true);
  }
  const { pkg, version } = await resolvePackage(log);
  const final = path.join(paths.kernels, `${pkg}_${version}`);
  const built = await buildOnce(final, paths.tmp, async (tmp) => {
    const dl = await scratchDir(paths.tmp, 'kernel-download');
    try {
      log(`apt-get download ${pkg}=${version}`);
      // apt verifies the .deb against the signed indexes; it runs as root here, so let it write into our scratch dir.
      await fs.chmod(dl, 0o777);
      await run('apt-get', ['download', '-qq', `${pkg}=${version}`], { cwd: dl });
      const debs = (await fs.readdir(dl)).filter((n) => n.endsWith('.deb'));
      if (debs.length !== 1) throw new ImageBuildError('guest kernel', `apt-get download left ${debs.length} .deb files`);
      await run('dpkg-deb', ['-x', path.join(dl, debs[0]!), tmp]);
    } finally {
      await fs.rm(dl, { recursive: true, force: true });
    }
    const boot = await fs.readdir(path.join(tmp, 'boot'));
    const vmlinuz = boot.find((n) => n.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new ImageBuildError('guest kernel', `${pkg} has no /boot/vmlinuz-*`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    if (!(await exists(path.join(tmp, 'lib', 'modules', release)))) throw new ImageBuildError('guest kernel', `${pkg} has no modules for ${release}`);
    // Keep only what the VM uses: the image, its config and the modules.
    for (const n of await fs.readdir(tmp)) if (n !== 'boot' && n !== 'lib') await fs.rm(path.join(tmp, n), { recursive: true, force: true });
    await fs.writeFile(path.join(tmp, 'kernel.json'), `${JSON.stringify({ package: pkg, version, release }, null, 2)}\n`);
  });
  log(`guest kernel ${pkg} ${version}: ${built.cached ? 'CACHED' : 'fetched'}`);
  return kernelAt(built.dir, built.cached);
}
