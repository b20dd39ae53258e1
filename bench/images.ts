/**
 * Image store speed, on loopback only:
 * - pull throughput from a local docker-registry (Debian's package, started
 *   here on 127.0.0.1 with a temporary storage dir) for a large image made
 *   of random-data layers (incompressible, so the bytes on the wire are the
 *   image size): download + digest check + unpack + diff_id check;
 * - a second workspace of an already-pulled image: no pull (no registry
 *   request at all) and the rootfs preparation a container start does:
 *   resolve the image (local lookup) + upper/work dirs + one overlay mount.
 * Prints JSON. Usage: node --import tsx bench/images.ts [--mb 512] [--layers 4] [--runs 50]
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { inOwnNetns, percentiles } from './netns.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { buildImage, pushImage, tar } from '../test/helpers/oci-images.ts';
import { resolveImage } from '../src/host/images/resolve.ts';
import { registryConfig } from '../src/host/images/oci/auth.ts';
import { mountOverlay, unmount } from '../src/host/drivers/container/mounts.ts';
import type { PullEvent } from '../src/host/images/oci/pull.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MB = 1024 * 1024;
const gzipAsync = promisify(gzip);

/**
 * Make and push the big image in a child process: its ~1.5 GB of buffers
 * would otherwise sit in this process's heap, and every process spawn (mount(8)
 * in the second phase) would pay for copying its page tables.
 */
async function pushBigImage(registry: string, totalMb: number, layers: number): Promise<{ configDigest: string; wire: number; unpacked: number }> {
  const per = Math.floor((totalMb * MB) / layers);
  const tars = Array.from({ length: layers }, (_, i) => tar([
    { type: 'dir', path: `data${i}/` },
    ...Array.from({ length: 4 }, (_, j) => ({ type: 'file' as const, path: `data${i}/blob${j}.bin`, content: randomBytes(Math.floor(per / 4)) })),
  ]));
  // gzip in the thread pool, all layers at once (random data compresses at ~25 MB/s per core).
  const gz = await Promise.all(tars.map((t) => gzipAsync(t, { level: 1 })));
  const img = buildImage({ layers: gz, env: ['PATH=/bin'], gzip: false, precompressed: tars });
  await pushImage(registry, 'bench/big', 'v1', img);
  return { configDigest: img.configDigest, wire: gz.reduce((a, b) => a + b.length, 0), unpacked: tars.reduce((a, t) => a + t.length, 0) };
}

async function main(): Promise<void> {
  const totalMb = arg('mb', 512);
  const layers = arg('layers', 4);
  const runs = arg('runs', 50);
  const loadBefore = Math.round(os.loadavg()[0]! * 100) / 100;
  const reg = await startRegistry();
  const artifacts = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-bench-img-'));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-bench-ws-'));
  try {
    const t0 = performance.now();
    const pushed = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', script, '--push-to', reg.url, '--mb', String(totalMb), '--layers', String(layers)], { encoding: 'utf8', maxBuffer: 1 << 20 })) as { configDigest: string; wire: number; unpacked: number };
    // The registry's own first read of freshly written blobs races their writeback: start from a quiet disk.
    execFileSync('sync');
    const prepared = (performance.now() - t0) / 1000;
    const wire = pushed.wire;
    const unpacked = pushed.unpacked;
    const ref = `${reg.host}/bench/big:v1`;
    // The bench registry is on loopback: listed, as an operator lists a private registry.
    const cfg = registryConfig({ HEARTH_PRIVATE_REGISTRIES: reg.host });

    // 1. Cold pull.
    const events: Array<PullEvent & { at: number }> = [];
    const p0 = performance.now();
    const pulled = await resolveImage(ref, { artifactsDir: artifacts, registry: cfg, onPull: (e) => events.push({ ...e, at: performance.now() - p0 }) });
    const pullSeconds = (performance.now() - p0) / 1000;
    const lastDownload = Math.max(...events.filter((e) => e.type === 'layer' && e.state === 'unpacking').map((e) => e.at)) / 1000;

    // 2. Second workspace of the same image: nothing pulled; rootfs prepared as the container driver does.
    const resolveMs: number[] = [];
    const mountMs: number[] = [];
    const prepareMs: number[] = [];
    const spawnMs: number[] = [];
    let pullEvents = 0;
    for (let i = 0; i < runs; i++) {
      const dir = path.join(work, `ws${i}`);
      const a = performance.now();
      const image = await resolveImage(ref, { artifactsDir: artifacts, registry: cfg, onPull: () => pullEvents++ });
      const b = performance.now();
      await Promise.all(['upper', 'work', 'rootfs'].map((d) => fs.mkdir(path.join(dir, d), { recursive: true })));
      await mountOverlay(path.join(dir, 'rootfs'), { lower: image.layers, upper: path.join(dir, 'upper'), work: path.join(dir, 'work') });
      const c = performance.now();
      resolveMs.push(b - a);
      mountMs.push(c - b);
      prepareMs.push(c - a);
      // mount(8) is a process: its spawn cost on this host, the floor under the mount figure.
      const d = performance.now();
      execFileSync('true');
      spawnMs.push(performance.now() - d);
      await unmount(path.join(dir, 'rootfs'));
      await fs.rm(dir, { recursive: true, force: true });
    }
    if (pulled.digest !== pushed.configDigest) throw new Error('pulled the wrong image');

    const r = (x: number) => Math.round(x * 100) / 100;
    process.stdout.write(`${JSON.stringify({
      bench: 'images',
      registry: 'docker-registry on 127.0.0.1 (loopback)',
      image: { layers, wire_mb: r(wire / MB), unpacked_mb: r(unpacked / MB), compression: 'gzip level 1 over random data', prepare_s: r(prepared) },
      pull: {
        seconds: r(pullSeconds),
        mb_per_s: r(wire / MB / pullSeconds),
        unpacked_mb_per_s: r(unpacked / MB / pullSeconds),
        downloads_done_after_s: r(lastDownload),
        note: 'download (digest checked while streaming to disk) then unpack (diff_id checked while unpacking), 3 layers at a time',
      },
      second_workspace: {
        runs,
        pull_events: pullEvents,
        resolve_ms: percentiles(resolveMs),
        overlay_mount_ms: percentiles(mountMs),
        rootfs_prepare_ms: percentiles(prepareMs),
        spawn_true_ms: percentiles(spawnMs),
        note: 'resolve = the image store (local lookup, no network); overlay_mount = mkdir + mount(8) as the container driver does, mostly process spawn (compare spawn_true_ms)',
      },
      targets: { pull_mb_per_s: 100, second_workspace_rootfs_prepare_ms: 5, second_workspace_pulls: 0 },
      cpus: os.cpus().length,
      load_avg_1m_before: loadBefore,
      load_avg_1m_after: Math.round(os.loadavg()[0]! * 100) / 100,
    }, null, 2)}\n`);
  } finally {
    await reg.stop();
    await fs.rm(artifacts, { recursive: true, force: true });
    await fs.rm(work, { recursive: true, force: true });
  }
}

const pushTo = process.argv.indexOf('--push-to');
if (pushTo > 0) process.stdout.write(JSON.stringify(await pushBigImage(process.argv[pushTo + 1]!, arg('mb', 512), arg('layers', 4))));
else if (inOwnNetns(script)) await main();
