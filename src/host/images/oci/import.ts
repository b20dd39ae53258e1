/**
 * Importing image archives, for hosts without a registry: `docker save`
 * output (legacy layout with manifest.json, and Docker 25+'s OCI-shaped one)
 * and OCI image-layout tarballs (oci-layout + index.json + blobs/).
 *
 * The archive is first unpacked into a scratch dir with the same safe
 * unpacker as layers (no path leaves the scratch dir, no symlink is
 * followed while writing); files inside it are then read by resolving
 * symlinks within that dir only (docker save links duplicate layers).
 * Every blob is checked against its digest, every layer against its diff_id,
 * before anything is recorded.
 */
import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream';
import path from 'node:path';
import { scratchDir } from '../atomic.ts';
import { BlobVerificationError, InvalidImageError } from '../errors.ts';
import type { ImageManifest } from '../manifest.ts';
import type { ArtifactPaths } from '../paths.ts';
import { resolveInRoot } from '../rootfs.ts';
import {
  ImageFormatError, MEDIA, checkLayersMatchConfig, layerCompression, parseImageConfig, parseManifestDoc, selectPlatform,
  type Descriptor, type ImageConfig, type LayerCompression,
} from './media.ts';
import { formatReference, familiarReference, parseReference } from './reference.ts';
import { ensureLayer, ociImageId, writeImageRecord, writeRef } from './records.ts';
import { ociRecord, runLimited, type PullEvent } from './pull.ts';
import { readTar } from './tar.ts';
import { unpackLayer } from './unpack.ts';
import { boundedBytes, imageLimits, limitError, type ImageLimits } from './limits.ts';

export interface ImportOptions {
  paths: ArtifactPaths;
  /** Extra name for the imported image(s), e.g. `myapp:1.0`. */
  tag?: string;
  onEvent?: (e: PullEvent) => void;
  /** Bounds on the archive and its layers. Default: imageLimits() (the environment). */
  limits?: ImageLimits;
}

export interface ImportedImage {
  record: ImageManifest;
  refs: string[];
}

export interface ImportResult {
  format: 'docker-archive' | 'oci-archive';
  images: ImportedImage[];
  seconds: number;
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

async function startsWith(file: string, magic: Buffer): Promise<boolean> {
  const fh = await fs.open(file, 'r');
  try {
    const b = Buffer.alloc(magic.length);
    const { bytesRead } = await fh.read(b, 0, magic.length, 0);
    return bytesRead === magic.length && b.equals(magic);
  } finally {
    await fh.close();
  }
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** A file of the unpacked archive, symlinks resolved inside it; refuses anything that is not a regular file. */
async function archiveFile(root: string, rel: string, archive: string): Promise<string> {
  let p: string;
  try {
    p = await resolveInRoot(root, rel);
  } catch (e) {
    throw new InvalidImageError(archive, `it names ${JSON.stringify(rel)}, which it does not contain (${(e as Error).message})`);
  }
  const st = await fs.lstat(p).catch(() => null);
  if (!st?.isFile()) throw new InvalidImageError(archive, `${JSON.stringify(rel)} is missing or not a regular file`);
  return p;
}

async function readJson(file: string, what: string, archive: string): Promise<unknown> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new InvalidImageError(archive, `${what} is not JSON: ${(e as Error).message}`);
  }
}

function normalizeTag(tag: string): string {
  return formatReference(parseReference(tag));
}

interface Candidate {
  configFile: string;
  configDigest: string;
  layers: Array<{ file: string; compression: LayerCompression; compressedDigest: string | null; mediaType: string }>;
  refs: string[];
  manifestDigest: string | null;
}

/** Import a `docker save` or OCI layout archive (tar, optionally gzip-compressed). */
export async function importArchive(file: string, opts: ImportOptions): Promise<ImportResult> {
  const started = Date.now();
  const archive = path.basename(file);
  const st = await fs.stat(file).catch(() => null);
  if (!st?.isFile()) throw new InvalidImageError(archive, `${file} is not a file`);
  const extraRef = opts.tag ? normalizeTag(opts.tag) : null;
  const limits = opts.limits ?? imageLimits();
  const compressed = await startsWith(file, GZIP_MAGIC);
  // A compressed archive is bounded like a layer blob; a plain one like an uncompressed layer (and, below, as it is read).
  const sizeKey = compressed ? 'maxCompressedBytes' : 'maxUncompressedBytes';
  if (st.size > limits[sizeKey]) throw limitError(sizeKey, limits, `the archive ${archive} is ${st.size} bytes, more than ${limits[sizeKey]}`);
  const scratch = await scratchDir(opts.paths.tmp, 'import');
  try {
    const root = path.join(scratch, 'archive');
    await fs.mkdir(root);
    const input = compressed ? pipeline(createReadStream(file), createGunzip(), () => undefined) : createReadStream(file);
    try {
      await unpackLayer(readTar(boundedBytes(input, 'maxUncompressedBytes', limits, `the archive ${archive}`)), root, { chown: false, limits });
    } catch (e) {
      if (e instanceof InvalidImageError || (e as Error).name === 'UnsafeLayerError' || (e as Error).name === 'ImageLimitError') throw e;
      throw new InvalidImageError(archive, `it is not a readable tar archive: ${(e as Error).message}`);
    }
    const has = async (rel: string) => fs.lstat(path.join(root, rel)).then(() => true, () => false);
    let format: ImportResult['format'];
    let candidates: Candidate[];
    if (await has('manifest.json')) {
      format = 'docker-archive';
      candidates = await dockerCandidates(root, archive);
    } else if ((await has('index.json')) && (await has('oci-layout'))) {
      format = 'oci-archive';
      candidates = await ociCandidates(root, archive);
    } else {
      throw new InvalidImageError(archive, 'it has neither manifest.json (docker save) nor oci-layout + index.json (OCI image layout)',
        'create it with `docker save IMAGE -o FILE` or `skopeo copy … oci-archive:FILE`');
    }
    if (candidates.length === 0) throw new InvalidImageError(archive, 'it contains no image');

    const images: ImportedImage[] = [];
    for (const c of candidates) images.push(await importCandidate(c, { ...opts, limits, archive, format, extraRef }));
    return { format, images, seconds: (Date.now() - started) / 1000 };
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

async function importCandidate(c: Candidate, o: ImportOptions & { archive: string; format: ImportResult['format']; extraRef: string | null }): Promise<ImportedImage> {
  const emit = o.onEvent ?? (() => undefined);
  const bytes = await fs.readFile(c.configFile);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (digest !== c.configDigest) throw new BlobVerificationError(c.configDigest, o.archive, `the image config hashes to ${digest}`);
  let config: ImageConfig;
  try {
    config = parseImageConfig(bytes);
    if (config.diffIds.length !== c.layers.length) throw new ImageFormatError(`the archive lists ${c.layers.length} layers but the config has ${config.diffIds.length} diff_ids`);
    checkLayersMatchConfig({ kind: 'manifest', mediaType: '', config: { mediaType: '', digest, size: bytes.length }, layers: c.layers.map((l) => ({ mediaType: l.mediaType, digest: l.compressedDigest ?? '', size: 0 })) }, config);
  } catch (e) {
    if (e instanceof ImageFormatError) throw new InvalidImageError(o.archive, e.message, e.hint);
    throw e;
  }
  const refs = [...new Set([...c.refs, ...(o.extraRef ? [o.extraRef] : [])])];
  const name = refs[0] ? familiarReference(parseReference(refs[0])) : digest;
  emit({ type: 'resolved', ref: name, digest, layers: c.layers.length, bytes: 0, cachedLayers: 0 });
  let size = 0;
  const jobs = c.layers.map((l, index) => async () => {
    const diffId = config.diffIds[index]!;
    const source = `${o.archive} layer ${index + 1}/${c.layers.length}`;
    let fetched = false;
    const layer = await ensureLayer(o.paths, diffId, async () => {
      fetched = true;
      emit({ type: 'layer', digest: diffId, index, state: 'unpacking', bytes: 0, total: 0 });
      if (l.compressedDigest) {
        const got = await sha256File(l.file);
        if (got !== l.compressedDigest) throw new BlobVerificationError(l.compressedDigest, source, `its content hashes to ${got}`);
      }
      return { diffId, file: l.file, compression: l.compression, compressedDigest: l.compressedDigest, mediaType: l.mediaType, source, limits: o.limits };
    });
    const meta = JSON.parse(await fs.readFile(path.join(layer.dir, 'layer.json'), 'utf8')) as { stats?: { bytes?: number } };
    size += meta.stats?.bytes ?? 0;
    emit({ type: 'layer', digest: diffId, index, state: fetched ? 'done' : 'cached', bytes: 0, total: 0 });
  });
  await runLimited(jobs, 2);
  const record = ociRecord({
    paths: o.paths, ref: name, configDigest: digest, manifestDigest: c.manifestDigest, config,
    source: { type: o.format, from: o.archive }, size,
  });
  await writeImageRecord(o.paths, record);
  for (const ref of refs) await writeRef(o.paths, { ref, image: ociImageId(digest), digest, manifest_digest: c.manifestDigest, updated_at: new Date().toISOString() });
  emit({ type: 'done', ref: name, id: record.id, cached: false, seconds: 0, downloaded: 0 });
  return { record, refs };
}

const HEX_NAME = /(?:^|\/)(?:sha256[:/])?([a-f0-9]{64})(?:\.json)?$/;

/** docker save: manifest.json = [{ Config, RepoTags, Layers }]. */
async function dockerCandidates(root: string, archive: string): Promise<Candidate[]> {
  const doc = await readJson(path.join(root, 'manifest.json'), 'manifest.json', archive);
  if (!Array.isArray(doc)) throw new InvalidImageError(archive, 'manifest.json is not a list');
  const out: Candidate[] = [];
  for (const [i, entry] of doc.entries()) {
    const e = entry as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
      throw new InvalidImageError(archive, `manifest.json entry ${i} needs Config and Layers`);
    }
    const configFile = await archiveFile(root, e.Config, archive);
    // The config's file name is its digest (`<hex>.json` or `blobs/sha256/<hex>`): checked when present.
    const named = HEX_NAME.exec(e.Config)?.[1];
    const configDigest = named ? `sha256:${named}` : `sha256:${createHash('sha256').update(await fs.readFile(configFile)).digest('hex')}`;
    const layers: Candidate['layers'] = [];
    for (const l of e.Layers as string[]) {
      const f = await archiveFile(root, l, archive);
      const gz = await startsWith(f, GZIP_MAGIC);
      layers.push({ file: f, compression: gz ? 'gzip' : 'none', compressedDigest: null, mediaType: gz ? MEDIA.dockerLayerGzip : MEDIA.ociLayer });
    }
    const refs: string[] = [];
    for (const t of Array.isArray(e.RepoTags) ? e.RepoTags : []) {
      if (typeof t !== 'string') continue;
      try {
        refs.push(normalizeTag(t));
      } catch {
        // A tag we cannot parse is not a reason to refuse the image: it just gets no name from it.
      }
    }
    out.push({ configFile, configDigest, layers, refs, manifestDigest: null });
  }
  return out;
}

async function blobFile(root: string, d: Descriptor, archive: string): Promise<string> {
  return archiveFile(root, `blobs/sha256/${d.digest.slice('sha256:'.length)}`, archive);
}

/** OCI layout: index.json → (nested index →) manifest for linux/amd64 → config + layer blobs. */
async function ociCandidates(root: string, archive: string): Promise<Candidate[]> {
  const wrap = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof ImageFormatError) throw new InvalidImageError(archive, e.message, e.hint);
      throw e;
    }
  };
  const indexBytes = await fs.readFile(await archiveFile(root, 'index.json', archive));
  const index = wrap(() => parseManifestDoc(indexBytes, MEDIA.ociIndex));
  if (index.kind !== 'index') throw new InvalidImageError(archive, 'index.json is not an image index');
  const out: Candidate[] = [];
  const verified = async (d: Descriptor) => {
    const f = await blobFile(root, d, archive);
    const b = await fs.readFile(f);
    const got = `sha256:${createHash('sha256').update(b).digest('hex')}`;
    if (got !== d.digest || b.length !== d.size) throw new BlobVerificationError(d.digest, archive, got !== d.digest ? `its content hashes to ${got}` : `it is ${b.length} bytes, the descriptor says ${d.size}`);
    return b;
  };
  for (const top of index.manifests) {
    const names = [top.annotations?.['io.containerd.image.name'], top.annotations?.['org.opencontainers.image.ref.name']].filter((x): x is string => !!x);
    let desc = top;
    let bytes = await verified(desc);
    let doc = wrap(() => parseManifestDoc(bytes, desc.mediaType));
    for (let depth = 0; doc.kind === 'index'; depth++) {
      if (depth > 4) throw new InvalidImageError(archive, 'image indexes nest too deeply');
      const inner = doc;
      desc = wrap(() => selectPlatform(inner));
      bytes = await verified(desc);
      doc = wrap(() => parseManifestDoc(bytes, desc.mediaType));
    }
    const manifest = doc;
    const configFile = await blobFile(root, manifest.config, archive);
    await verified(manifest.config);
    const layers: Candidate['layers'] = [];
    for (const l of manifest.layers) {
      layers.push({ file: await blobFile(root, l, archive), compression: wrap(() => layerCompression(l.mediaType)), compressedDigest: l.digest, mediaType: l.mediaType });
    }
    const refs: string[] = [];
    for (const n of names) {
      // A bare tag ("latest") names nothing by itself: it needs --tag.
      if (!n.includes('/') && !n.includes(':') && names.length === 1) continue;
      try {
        refs.push(normalizeTag(n));
      } catch {
        // ignored, as for docker save tags
      }
    }
    out.push({ configFile, configDigest: manifest.config.digest, layers, refs: [...new Set(refs)], manifestDigest: desc.digest });
  }
  return out;
}
