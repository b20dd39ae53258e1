/**
 * Pulling an image: reference → manifest (an index narrowed to linux/amd64)
 * → config → layers. Each layer blob is streamed to a scratch file while its
 * digest and size are checked, and only a verified blob is unpacked (its
 * diff_id checked again while unpacking). Layers already unpacked for any
 * image are not downloaded at all. Pulls of the same reference, and unpacks
 * of the same layer, are shared within the process.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { InvalidImageError } from '../errors.ts';
import type { ImageManifest } from '../manifest.ts';
import type { ArtifactPaths } from '../paths.ts';
import { RegistryClient } from './registry.ts';
import { imageLimits, limitError } from './limits.ts';
import type { RegistryConfig } from './auth.ts';
import {
  ImageFormatError, checkLayersMatchConfig, layerCompression, parseImageConfig, parseManifestDoc, selectPlatform,
  type ImageConfig, type ManifestDoc,
} from './media.ts';
import { familiarReference, formatReference, manifestReference, type ImageReference } from './reference.ts';
import {
  OCI_UNPACK_VERSION, ensureLayer, ociImageId, ociLayerDir, readImageRecord, recordComplete, writeImageRecord, writeRef,
} from './records.ts';

/** Progress of one pull, for progress bars (CLI) and logs (hearthd). */
export type PullEvent =
  | { type: 'resolved'; ref: string; digest: string; layers: number; bytes: number; cachedLayers: number }
  | { type: 'layer'; digest: string; index: number; state: 'cached' | 'downloading' | 'unpacking' | 'done'; bytes: number; total: number }
  | { type: 'done'; ref: string; id: string; cached: boolean; seconds: number; downloaded: number };

export interface PullOptions {
  paths: ArtifactPaths;
  registry: RegistryConfig;
  client?: RegistryClient;
  onEvent?: (e: PullEvent) => void;
  /** Layers downloaded at once. */
  concurrency?: number;
}

export interface PulledImage {
  record: ImageManifest;
  ref: string;
  cached: boolean;
  /** Compressed bytes downloaded by this pull (0 when every layer was here). */
  downloaded: number;
  seconds: number;
}

function invalid(ref: ImageReference, e: unknown): never {
  if (e instanceof ImageFormatError) throw new InvalidImageError(familiarReference(ref), e.message, e.hint);
  throw e;
}

/** Build the image record from a verified manifest and config. */
export function ociRecord(opts: {
  paths: ArtifactPaths; ref: string; configDigest: string; manifestDigest: string | null; config: ImageConfig;
  source: NonNullable<ImageManifest['source']>; size: number;
}): ImageManifest {
  const diffTopFirst = [...opts.config.diffIds].reverse();
  return {
    schema: 1,
    kind: 'oci',
    id: ociImageId(opts.configDigest),
    ref: opts.ref,
    layers: diffTopFirst.map((d) => path.relative(opts.paths.root, path.join(ociLayerDir(opts.paths, d), 'rootfs'))),
    layer_digests: diffTopFirst,
    env: [...opts.config.env],
    workingDir: opts.config.workingDir,
    user: opts.config.user,
    entrypoint: opts.config.entrypoint,
    cmd: opts.config.cmd,
    digest: opts.configDigest,
    manifest_digest: opts.manifestDigest,
    versions: versionsFromLabels(opts.config.labels),
    labels: opts.config.labels,
    exposed_ports: opts.config.exposedPorts,
    created: opts.config.created,
    source: opts.source,
    size: opts.size,
    built_at: new Date().toISOString(),
    recipe_version: OCI_UNPACK_VERSION,
  };
}

/** What an OCI image says about its own version (only what it says: nothing is guessed). */
export function versionsFromLabels(labels: Record<string, string>): Record<string, string> {
  const v = labels['org.opencontainers.image.version'];
  return v ? { image: v } : {};
}

const inflightPulls = new Map<string, Promise<PulledImage>>();

/** Pull `ref` (already parsed) into the store. */
export function pullImage(ref: ImageReference, opts: PullOptions): Promise<PulledImage> {
  const key = formatReference(ref);
  let p = inflightPulls.get(key);
  if (!p) {
    p = doPull(ref, opts).finally(() => inflightPulls.delete(key));
    inflightPulls.set(key, p);
  }
  return p;
}

async function doPull(ref: ImageReference, opts: PullOptions): Promise<PulledImage> {
  const started = Date.now();
  const client = opts.client ?? new RegistryClient(opts.registry);
  const emit = opts.onEvent ?? (() => undefined);
  const name = familiarReference(ref);

  let top = await client.manifest(ref, manifestReference(ref));
  let doc = (() => {
    try {
      return parseManifestDoc(top.bytes, top.contentType);
    } catch (e) {
      return invalid(ref, e);
    }
  })();
  if (doc.kind === 'index') {
    let chosen;
    try {
      chosen = selectPlatform(doc);
    } catch (e) {
      invalid(ref, e);
    }
    top = await client.manifest(ref, chosen.digest);
    try {
      doc = parseManifestDoc(top.bytes, top.contentType);
    } catch (e) {
      invalid(ref, e);
    }
    if (doc.kind !== 'manifest') invalid(ref, new ImageFormatError('the index points at another index for linux/amd64'));
  }
  const manifest = doc as ManifestDoc;
  const configBytes = await client.blob(ref, manifest.config);
  let config: ImageConfig;
  try {
    config = parseImageConfig(configBytes);
    checkLayersMatchConfig(manifest, config);
    for (const l of manifest.layers) layerCompression(l.mediaType);
  } catch (e) {
    invalid(ref, e);
  }
  const configDigest = manifest.config.digest;
  const refText = formatReference(ref);
  const refRecord = { ref: refText, image: ociImageId(configDigest), digest: configDigest, manifest_digest: top.digest, updated_at: new Date().toISOString() };

  const existing = await readImageRecord(opts.paths, ociImageId(configDigest)).catch(() => undefined);
  if (existing && existing.digest === configDigest && (await recordComplete(opts.paths, existing))) {
    await writeRef(opts.paths, refRecord);
    emit({ type: 'resolved', ref: name, digest: top.digest, layers: manifest.layers.length, bytes: 0, cachedLayers: manifest.layers.length });
    emit({ type: 'done', ref: name, id: existing.id, cached: true, seconds: (Date.now() - started) / 1000, downloaded: 0 });
    return { record: existing, ref: refText, cached: true, downloaded: 0, seconds: (Date.now() - started) / 1000 };
  }

  const total = manifest.layers.reduce((a, l) => a + l.size, 0);
  // Bounded before anything is downloaded; each download is then held to its declared (and verified) size.
  const limits = opts.registry.limits ?? imageLimits();
  if (total > limits.maxCompressedBytes) {
    throw limitError('maxCompressedBytes', limits, `${name} is ${total} bytes of compressed layers, more than ${limits.maxCompressedBytes}`);
  }
  emit({ type: 'resolved', ref: name, digest: top.digest, layers: manifest.layers.length, bytes: total, cachedLayers: 0 });
  let downloaded = 0;
  let size = 0;
  const source = `${ref.registry}/${ref.repository}`;
  const jobs = manifest.layers.map((desc, index) => async () => {
    const diffId = config.diffIds[index]!;
    let fetched = false;
    const layer = await ensureLayer(opts.paths, diffId, async () => {
      fetched = true;
      const file = path.join(opts.paths.tmp, `blob-${desc.digest.slice(7, 23)}.${process.pid}.${randomBytes(4).toString('hex')}`);
      await fs.mkdir(opts.paths.tmp, { recursive: true });
      emit({ type: 'layer', digest: desc.digest, index, state: 'downloading', bytes: 0, total: desc.size });
      try {
        await client.blobToFile(ref, desc, file, (p) => emit({ type: 'layer', digest: desc.digest, index, state: 'downloading', bytes: p.bytes, total: p.total }));
      } catch (e) {
        await fs.rm(file, { force: true });
        throw e;
      }
      downloaded += desc.size;
      emit({ type: 'layer', digest: desc.digest, index, state: 'unpacking', bytes: desc.size, total: desc.size });
      return {
        diffId, file, compression: layerCompression(desc.mediaType), compressedDigest: desc.digest, mediaType: desc.mediaType,
        source: `${source} layer ${index + 1}/${manifest.layers.length}`,
        limits,
        cleanup: () => fs.rm(file, { force: true }),
      };
    });
    const meta = JSON.parse(await fs.readFile(path.join(layer.dir, 'layer.json'), 'utf8')) as { stats?: { bytes?: number } };
    size += meta.stats?.bytes ?? 0;
    emit({ type: 'layer', digest: desc.digest, index, state: fetched ? 'done' : 'cached', bytes: desc.size, total: desc.size });
  });
  await runLimited(jobs, opts.concurrency ?? 3);

  const record = ociRecord({ paths: opts.paths, ref: name, configDigest, manifestDigest: top.digest, config, source: { type: 'registry', from: refText }, size });
  await writeImageRecord(opts.paths, record);
  await writeRef(opts.paths, refRecord);
  const seconds = (Date.now() - started) / 1000;
  emit({ type: 'done', ref: name, id: record.id, cached: false, seconds, downloaded });
  return { record, ref: refText, cached: false, downloaded, seconds };
}

/** Run async jobs, at most `limit` at once; the first failure wins after all started jobs settle. */
export async function runLimited(jobs: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (failure === null && next < jobs.length) {
      const job = jobs[next++]!;
      try {
        await job();
      } catch (e) {
        if (failure === null) failure = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  if (failure !== null) throw failure;
}
