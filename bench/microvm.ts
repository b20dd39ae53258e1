/**
 * microVM create → ready, beside the physical floor on this machine (JSON).
 *
 *   cold_boot_ready      MicrovmDriver.run with no template (qcow2 overlay, tap, cgroup, QEMU,
 *                        kernel + initramfs + switch_root + Node + identity) until /health answers
 *   template_ready       MicrovmDriver.run restoring the image's template (disk copy, tap, cgroup,
 *                        QEMU -incoming, cont, identity, agent listening) until /health answers
 *   floor_bare_boot      bare QEMU, same kernel and initramfs, `rdinit=/probe` (first userspace
 *                        instruction, then poweroff): spawn → exit
 *   floor_bare_restore   bare QEMU, same argv as a template restore, `-incoming` of the same
 *                        state file: spawn → VM running
 *
 * Usage (root): node --import tsx bench/microvm.ts [--runs N] [--image debian-12] [--accel tcg|kvm]
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MicrovmDriver } from '../src/host/drivers/microvm/index.ts';
import { ensureGuestKernel } from '../src/host/drivers/microvm/boot-media/kernel.ts';
import { qemuArgv } from '../src/host/drivers/microvm/qemu-argv.ts';
import { spawnQemu, killHard } from '../src/host/drivers/microvm/process.ts';
import type { SandboxSpec } from '../src/host/drivers/driver.ts';
import { ensureAgentDrive, resolveImage } from '../src/host/images/index.ts';
import { HostNetwork } from '../src/host/network/host-network.ts';
import { slotFor, type NetworkPlan } from '../src/host/network/slot.ts';
import { inOwnNetns, percentiles } from './netns.ts';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};

function health(ip: string, secret: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: ip, port: 9990, path: '/health', agent: false, timeout: 1000, headers: { authorization: `Bearer ${secret}` } }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function untilHealthy(ip: string, secret: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await health(ip, secret))) {
    if (Date.now() > deadline) throw new Error(`no /health from ${ip}`);
    await new Promise((r) => setTimeout(r, 3));
  }
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '5'));
  const imageName = arg('image', 'debian-12');
  const tag = `b${randomBytes(2).toString('hex').slice(0, 3)}`;
  const plan: NetworkPlan = { bridge: `hb${tag}`, subnet: '10.199.7.0/24', linkPrefix: tag };
  const tmp = await mkdtemp(path.join(os.tmpdir(), `hearth-bench-${tag}-`));
  const runDir = path.join('/run/hearth', `bench-${tag}`);
  const network = new HostNetwork(plan, path.join(tmp, 'net'));
  await network.ensure();
  const accel = process.argv.includes('--accel') ? (arg('accel', 'tcg') as 'tcg' | 'kvm') : undefined;
  const events: string[] = [];
  // The driver's own phase marks (ms since run() began), per kind of start: where the time goes.
  const phases: Record<string, Record<string, number[]>> = { cold: {}, template: {} };
  const mk = (templates: boolean) => new MicrovmDriver({
    network, runDir, workspacesRoot: path.join(tmp, 'ws'), instance: plan.bridge, templates, ...(accel ? { accel } : {}),
    log: (msg) => { if (/withdraw|verification/.test(msg)) events.push(msg); },
    trace: (e) => { if (e.op === 'run' || e.op === 'guest') ((phases[templates ? 'template' : 'cold']![e.phase] ??= [])).push(e.ms); },
  });
  const cold = mk(false);
  const warm = mk(true);
  const agent = await ensureAgentDrive({});
  const image = await resolveImage(imageName, {});
  const spec = (i: number): SandboxSpec => ({
    workspaceId: `ws_${tag}_${i}`, generation: 1, hostname: `bench${i}`, image, agent, agentSecret: randomBytes(16).toString('hex'), agentPort: 9990,
    cpus: 1, memoryMb: 512, diskSizeMb: 4096, pidsLimit: 1024, slot: slotFor(plan, i), dir: path.join(tmp, 'ws', `ws_${tag}_${i}`),
  });
  const result: Record<string, unknown> = { bench: 'microvm', image: imageName, runs, load_before: os.loadavg().map((l) => Math.round(l * 100) / 100) };
  try {
    const template = await warm.ensureTemplate(spec(0));
    const meta = JSON.parse(await readFile(path.join(template, 'template.json'), 'utf8')) as { bytes: number; launch: { accel: string; kernel: string; initrd: string; agentDisk: string; cmdline: string; vcpus: number; memoryMb: number } };
    result.accel = meta.launch.accel;
    result.template_state_mb = Math.round(meta.bytes / 1e6);

    const measure = async (driver: MicrovmDriver, base: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < runs; i++) {
        const s = spec(base + i);
        const t0 = performance.now();
        await driver.run(s);
        await untilHealthy(s.slot.ip, s.agentSecret);
        out.push(performance.now() - t0);
        ((phases[driver === cold ? 'cold' : 'template']!['healthy'] ??= [])).push(performance.now() - t0);
        await driver.destroy(s);
      }
      return out;
    };
    const coldMs = await measure(cold, 10);
    const warmMs = await measure(warm, 30);

    // Floor 1: bare QEMU boot of the same kernel + initramfs to the first userspace instruction.
    const bareBoot: number[] = [];
    for (let i = 0; i < runs; i++) {
      const serial = path.join(tmp, `probe-${i}.log`);
      // The driver's own command line (same clock settings), with the probe as the whole userspace.
      const l = meta.launch;
      const argvFixed = [
        'qemu-system-x86_64', '-M', 'microvm,acpi=on,isa-serial=on,rtc=on', ...(l.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,tb-size=64']),
        '-m', `${l.memoryMb}M`, '-smp', String(l.vcpus), '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
        '-kernel', l.kernel, '-initrd', l.initrd, '-append', `${l.cmdline} rdinit=/probe`, '-serial', `file:${serial}`,
      ];
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const p = spawn(argvFixed[0]!, argvFixed.slice(1), { stdio: 'ignore' });
        const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
        p.on('exit', () => { clearTimeout(timer); resolve(); });
        p.on('error', reject);
      });
      bareBoot.push(performance.now() - t0);
      if (!(await readFile(serial, 'utf8').catch(() => '')).includes('HEARTH-BOOT-PROBE-OK')) throw new Error('bare boot did not reach userspace');
    }

    // Floor 2: bare QEMU restore of the same template (same argv as the driver's, no tap/cgroup/identity).
    const bareRestore: number[] = [];
    for (let i = 0; i < runs; i++) {
      const dir = path.join(tmp, `bare-${i}`);
      await mkdir(dir, { recursive: true });
      await copyFile(path.join(template, 'disk.qcow2'), path.join(dir, 'disk.qcow2'));
      const l = meta.launch;
      const argv = qemuArgv({
        name: `hearth-bare-${tag}-${i}`, accel: l.accel as 'tcg' | 'kvm', kernel: l.kernel, initrd: l.initrd, cmdline: l.cmdline, vcpus: l.vcpus, memoryMb: l.memoryMb,
        rootDisk: path.join(dir, 'disk.qcow2'), agentDisk: l.agentDisk, tap: `hvb${tag}${i}`.slice(0, 15), mac: '02:48:ff:ff:ff:fd',
        qmpSocket: path.join(dir, 'qmp.sock'), identitySocket: path.join(dir, 'id.sock'), consoleLog: path.join(dir, 'console.log'), pidFile: path.join(dir, 'qemu.pid'),
        rootDiskFd: 3, rootDiskRoFd: 4, incomingFd: 5,
      });
      const disk = path.join(dir, 'disk.qcow2');
      const t0 = performance.now();
      const q = await spawnQemu(argv, { logFile: path.join(dir, 'qemu.log'), qmpSocket: path.join(dir, 'qmp.sock'), cgroupDirs: [], fds: [{ path: disk, flags: 'r+' }, { path: disk, flags: 'r' }], incoming: path.join(template, 'state.bin') });
      const st = await q.qmp.waitStatus((s) => s !== 'inmigrate', 120_000);
      if (st !== 'running') await q.qmp.execute('cont');
      bareRestore.push(performance.now() - t0);
      q.qmp.close();
      await killHard(q.pid);
    }

    const c = percentiles(coldMs);
    const w = percentiles(warmMs);
    const fb = percentiles(bareBoot);
    const fr = percentiles(bareRestore);
    Object.assign(result, {
      cold_boot_ready_ms: c, template_ready_ms: w, floor_bare_boot_ms: fb, floor_bare_restore_ms: fr,
      phase_marks_p50_ms: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([p, xs]) => [p, percentiles(xs).p50]))])),
      ratio_cold_to_floor_p50: Math.round((c.p50 / fb.p50) * 100) / 100,
      ratio_template_to_floor_p50: Math.round((w.p50 / fr.p50) * 100) / 100,
      targets_tcg: { template_ready_p50_ms: 700, cold_boot_ready_p50_ms: 3000 },
      // Template restores that failed and fell back to a cold boot, and templates rebuilt after a failed verification.
      template_fallbacks: events.filter((e) => /withdraw/.test(e)).length,
      template_rebuilds: events.filter((e) => /verification/.test(e)).length,
      load_after: os.loadavg().map((l) => Math.round(l * 100) / 100),
    });
  } finally {
    await network.teardown().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

if (inOwnNetns(new URL(import.meta.url).pathname)) {
  await ensureGuestKernel({ offline: true });
  await main();
}
