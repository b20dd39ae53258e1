/**
 * Garbage collection of the artifacts dir (`hearth images gc`):
 *
 * - scratch dirs of builds/pulls whose process is gone;
 * - refs pointing at an image record that no longer exists;
 * - with `untagged`, OCI images no ref names any more (a re-pulled tag);
 * - layers no image record names (catalog or OCI), and per-driver artifacts
 *   of images that are gone.
 *
 * Never removed: anything an overlay mount on this host uses right now
 * (read from /proc/self/mountinfo), and layers younger than the grace period
 * (a concurrent pull writes its layers before its image record).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { reapStaleScratch } from './atomic.ts';
import type { ArtifactMeta } from './derived.ts';
import { parseImageManifest, type ImageManifest } from './manifest.ts';
import { artifactPaths, type ArtifactPaths } from './paths.ts';
import { listImageRecords, listRefs, refFile } from './oci/records.ts';

export interface GcOptions {
  artifactsDir?: string;
  /** Also remove OCI images that no name points at. */
  untagged?: boolean;
  /** Report only. */
  dryRun?: boolean;
  /** Leave layers younger than this alone (ms). Default 15 minutes. */
  graceMs?: number;
  log?: (line: string) => void;
}

export interface GcReport {
  scratch: string[];
  refs: string[];
  images: string[];
  layers: string[];
  derived: string[];
  /** Unreferenced, but mounted or too young: kept. */
  kept: string[];
  freedBytes: number;
  dryRun: boolean;
}

/** Paths used by overlay mounts (lowerdir/upperdir/workdir) in a mountinfo text. Pure. */
export function overlayPathsInUse(mountinfo: string): Set<string> {
  const out = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype, , superOpts] = line.slice(sep + 3).split(' ');
    if (fstype !== 'overlay' || !superOpts) continue;
    for (const opt of superOpts.split(',')) {
      const m = /^(lowerdir|upperdir|workdir)=(.*)$/.exec(opt);
      if (!m) continue;
      for (const p of m[2]!.split(':')) if (p) out.add(p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
    }
  }
  return out;
}

/** Bytes under `p` (a file or a whole tree), 0 when it is gone. */
export async function duBytes(p: string): Promise<number> {
  let total = 0;
  const st = await fs.lstat(p).catch(() => null);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  for (const e of await fs.readdir(p).catch(() => [] as string[])) total += await duBytes(path.join(p, e));
  return total;
}

async function catalogManifests(paths: ArtifactPaths): Promise<ImageManifest[]> {
  const out: ImageManifest[] = [];
  for (const n of await fs.readdir(paths.images).catch(() => [] as string[])) {
    if (!n.endsWith('.json') || n.startsWith('oci-')) continue;
    const file = path.join(paths.images, n);
    const m = await fs.readFile(file, 'utf8').then((t) => parseImageManifest(t, file), () => undefined);
    if (m) out.push(m);
  }
  return out;
}

export async function collectGarbage(opts: GcOptions = {}): Promise<GcReport> {
  const paths = artifactPaths(opts.artifactsDir);
  const log = opts.log ?? (() => undefined);
  const dry = opts.dryRun === true;
  const grace = opts.graceMs ?? 15 * 60_000;
  const report: GcReport = { scratch: [], refs: [], images: [], layers: [], derived: [], kept: [], freedBytes: 0, dryRun: dry };
  const inUse = overlayPathsInUse(await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => ''));
  const remove = async (p: string, list: string[], label: string) => {
    report.freedBytes += await duBytes(p);
    list.push(label);
    log(`${dry ? 'would remove' : 'remove'} ${label}`);
    if (!dry) await fs.rm(p, { recursive: true, force: true });
  };

  if (!dry) report.scratch = await reapStaleScratch(paths.tmp);

  const records = await listImageRecords(paths);
  const recordIds = new Set(records.map((m) => m.id));
  const refs = await listRefs(paths);
  const named = new Set<string>();
  for (const r of refs) {
    if (!recordIds.has(r.image)) await remove(refFile(paths, r.ref), report.refs, `ref ${r.ref} (image ${r.image} is gone)`);
    else named.add(r.image);
  }

  const live: ImageManifest[] = [...(await catalogManifests(paths))];
  for (const m of records) {
    const mounted = m.layers.some((rel) => inUse.has(path.join(paths.root, rel)));
    if (opts.untagged && !named.has(m.id) && !mounted) await remove(path.join(paths.images, `${m.id}.json`), report.images, `image ${m.id} (no name points at it)`);
    else live.push(m);
  }

  const wanted = new Set<string>();
  for (const m of live) for (const rel of m.layers) wanted.add(path.join(paths.root, rel));
  for (const name of (await fs.readdir(paths.layers).catch(() => [] as string[])).sort()) {
    const dir = path.join(paths.layers, name);
    const rootfs = path.join(dir, 'rootfs');
    if (wanted.has(rootfs)) continue;
    if (inUse.has(rootfs)) {
      report.kept.push(`layer ${name} (mounted)`);
      continue;
    }
    const st = await fs.stat(dir).catch(() => null);
    if (st && Date.now() - st.mtimeMs < grace) {
      report.kept.push(`layer ${name} (younger than the grace period)`);
      continue;
    }
    await remove(dir, report.layers, `layer ${name}`);
  }

  const digests = new Set(live.map((m) => m.digest));
  for (const kind of await fs.readdir(paths.derived).catch(() => [] as string[])) {
    for (const key of await fs.readdir(path.join(paths.derived, kind)).catch(() => [] as string[])) {
      const dir = path.join(paths.derived, kind, key);
      const meta = await fs.readFile(path.join(dir, 'artifact.json'), 'utf8').then((t) => JSON.parse(t) as ArtifactMeta, () => undefined);
      if (meta && digests.has(meta.image_digest)) continue;
      if ([...inUse].some((p) => p === dir || p.startsWith(`${dir}/`))) {
        report.kept.push(`artifact ${kind}/${key} (mounted)`);
        continue;
      }
      await remove(dir, report.derived, `artifact ${kind}/${key}${meta ? ` of ${meta.image}` : ''}`);
    }
  }
  return report;
}
