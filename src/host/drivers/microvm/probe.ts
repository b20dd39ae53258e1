/**
 * Can this host run microVMs, and with which accelerator? Decided by a real
 * boot, not by the existence of /dev/kvm (docs/host-facts.md: on PVM hosts /dev/kvm
 * runs a bare vCPU but a stock Linux guest hangs early): the guest kernel
 * with Hearth's initramfs and `rdinit=/probe`, which prints a marker and
 * powers off. Seen within the bound under KVM → `kvm`; otherwise `tcg`
 * with the reason. The verdict is cached per (kernel, initramfs, QEMU) in
 * the run dir, so only the first hearthd after boot pays the probe.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { hostRun } from '../../exec.ts';
import { PROBE_MARKER } from './boot-media/initramfs.ts';
import type { Accel } from './qemu-argv.ts';

export interface KvmProbe {
  accel: Accel;
  /** Why KVM is not used, or how long its boot took. */
  reason: string;
  bootMs?: number;
}

export const KVM_PROBE_TIMEOUT_MS = 8000;

/** Pure: the probe's QEMU argv. */
export function probeArgv(kernel: string, initrd: string, serialFile: string): string[] {
  return [
    'qemu-system-x86_64', '-M', 'microvm,acpi=on,isa-serial=on', '-accel', 'kvm', '-cpu', 'host', '-m', '128M', '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', kernel, '-initrd', initrd,
    '-append', 'console=ttyS0 quiet reboot=t panic=-1 pci=off rdinit=/probe',
    '-serial', `file:${serialFile}`,
  ];
}

export async function qemuVersion(): Promise<string> {
  const r = await hostRun('qemu-system-x86_64', ['--version'], { timeoutMs: 10_000 });
  return /version (\S+)/.exec(r.stdout)?.[1] ?? r.stdout.trim().split('\n')[0] ?? 'unknown';
}

export async function probeKvm(o: { kernel: string; initrd: string; runDir: string; qemu: string }): Promise<KvmProbe> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible: TCG (software emulation)' };
  }
  const cacheKey = [o.qemu, path.basename(o.kernel), path.basename(o.initrd)].join('|');
  const cacheFile = path.join(o.runDir, 'kvm-probe.json');
  const cached = JSON.parse(await readFile(cacheFile, 'utf8').catch(() => 'null')) as (KvmProbe & { key: string }) | null;
  if (cached?.key === cacheKey) return { accel: cached.accel, reason: `${cached.reason} (cached)`, ...(cached.bootMs ? { bootMs: cached.bootMs } : {}) };

  await mkdir(o.runDir, { recursive: true });
  const serial = path.join(o.runDir, `kvm-probe.${process.pid}.log`);
  const t0 = Date.now();
  let verdict: KvmProbe;
  try {
    const r = await hostRun(probeArgv(o.kernel, o.initrd, serial)[0]!, probeArgv(o.kernel, o.initrd, serial).slice(1), { timeoutMs: KVM_PROBE_TIMEOUT_MS, okCodes: [0, 1] })
      .then((res) => ({ ok: true as const, res }), (e: Error) => ({ ok: false as const, e }));
    const out = await readFile(serial, 'utf8').catch(() => '');
    const ms = Date.now() - t0;
    if (out.includes(PROBE_MARKER)) verdict = { accel: 'kvm', reason: `KVM boot probe: guest userspace up in ${ms} ms`, bootMs: ms };
    else if (!r.ok && /SIGKILL|killed/.test(r.e.message)) verdict = { accel: 'tcg', reason: `KVM boot probe: a stock guest kernel did not reach userspace in ${KVM_PROBE_TIMEOUT_MS} ms (paravirtual/nested KVM?): TCG (software emulation)` };
    else verdict = { accel: 'tcg', reason: `KVM boot probe failed: ${(r.ok ? r.res.stderr : r.e.message).trim().split('\n').slice(-2).join(' ') || 'no marker on the console'}: TCG (software emulation)` };
  } finally {
    await rm(serial, { force: true });
  }
  await writeFile(cacheFile, JSON.stringify({ ...verdict, key: cacheKey })).catch(() => undefined);
  return verdict;
}
