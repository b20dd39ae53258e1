/**
 * The Debian packages a Hearth host needs. Checked with dpkg-query; only the
 * missing ones are installed (one `apt-get update`, one `apt-get install`),
 * waiting for the dpkg lock when another apt run holds it.
 */
import { run, type RunOptions } from '../images/exec.ts';

export const HOST_PACKAGES = [
  'runc', 'nftables', 'tini', 'busybox-static', 'e2fsprogs', 'mmdebstrap',
  'qemu-system-x86', 'qemu-utils', 'erofs-utils', 'iproute2', 'procps',
  // Public access and SSH (issue 7): the real OpenSSH client, sshpass and Let's Encrypt's
  // pebble ACME server drive the gateway and edge tests on loopback.
  'openssh-client', 'sshpass', 'pebble',
  // Images (issue 9): setfattr writes overlay's opaque-dir xattrs when layers are unpacked;
  // docker-registry is the loopback registry the image tests and bench/images.ts push to.
  'attr', 'docker-registry',
  // microVM clones: the guest's reseed helper is a static C program built with gcc.
  'gcc', 'libc6-dev',
];

/** Pure: `dpkg-query -W -f '${Package}\t${db:Status-Abbrev}\n'` output → installed package names. */
export function parseDpkgQuery(stdout: string): Set<string> {
  const installed = new Set<string>();
  for (const line of stdout.split('\n')) {
    const [pkg, status] = line.split('\t');
    // db:Status-Abbrev is three letters: desired, status, error ("ii " = installed, no error).
    if (pkg && status && status.slice(1, 2) === 'i' && status.slice(2, 3).trim() === '') installed.add(pkg.replace(/:.*$/, ''));
  }
  return installed;
}

export async function installedPackages(pkgs: string[]): Promise<Set<string>> {
  const res = await run('dpkg-query', ['-W', '-f', '${Package}\t${db:Status-Abbrev}\n', ...pkgs], { allowFailure: true });
  return parseDpkgQuery(res.stdout);
}

const LOCK_RE = /Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock directory/i;

/** Run an apt command, waiting (polling) while another apt/dpkg holds its lock. */
async function aptWithLockWait(args: string[], opts: RunOptions & { log: (l: string) => void; timeoutMs?: number }): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  let said = false;
  while (true) {
    const res = await run('apt-get', ['-o', 'DPkg::Lock::Timeout=60', ...args], {
      ...opts,
      allowFailure: true,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (res.code === 0) return;
    const out = `${res.stderr}\n${res.stdout}`;
    if (LOCK_RE.test(out) && Date.now() < deadline) {
      if (!said) opts.log('waiting for the apt/dpkg lock held by another process…');
      said = true;
      await new Promise((r) => setTimeout(r, 5000));
      continue;
    }
    const tail = out.trim().split('\n').slice(-10).join('\n');
    throw new Error(`apt-get ${args.join(' ')} failed (exit ${res.code}):\n${tail}`);
  }
}

export interface PackagesResult {
  checked: string[];
  present: string[];
  installed: string[];
}

export async function ensureHostPackages(opts: {
  packages?: string[];
  log: (line: string) => void;
  onToolLine?: (line: string) => void;
}): Promise<PackagesResult> {
  const pkgs = opts.packages ?? HOST_PACKAGES;
  const have = await installedPackages(pkgs);
  const present = pkgs.filter((p) => have.has(p));
  const missing = pkgs.filter((p) => !have.has(p));
  if (missing.length === 0) return { checked: pkgs, present, installed: [] };
  opts.log(`missing packages: ${missing.join(' ')}`);
  const onLine = (l: string) => opts.onToolLine?.(`apt: ${l}`);
  await aptWithLockWait(['update'], { log: opts.log, onLine });
  await aptWithLockWait(['install', '-y', '--no-install-recommends', ...missing], { log: opts.log, onLine });
  const after = await installedPackages(missing);
  const still = missing.filter((p) => !after.has(p));
  if (still.length) throw new Error(`apt-get install finished but these are still not installed: ${still.join(' ')}`);
  return { checked: pkgs, present, installed: missing };
}
