/**
 * On-disk state of pulled and imported images in the artifacts dir:
 *
 *   layers/oci-<diff16>/rootfs   one unpacked layer, keyed by its diff_id (the
 *                                sha256 of the uncompressed tar): shared by every
 *                                image that has it, unpacked once; layer.json
 *                                holds the full diff_id, which is checked so a
 *                                16-hex-digit prefix collision cannot mix layers
 *   images/oci-<config16>.json   one image (an ImageManifest with kind "oci"),
 *                                keyed by its config digest (Docker's image id)
 *   refs/<ref>.json              one name → image id, the name URI-encoded
 *
 * Short keys keep overlay's `lowerdir=` option (one page, 4096 bytes) able
 * to hold deep images, as Docker's overlay2 does with its `l/` links.
 * Records are written atomically (tmp + rename); layers are built in tmp/
 * and renamed into place, so a crash never leaves half a layer behind.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import { buildOnce, exists, writeFileAtomic } from '../atomic.ts';
import { BlobVerificationError, ImageBuildError } from '../errors.ts';
import { parseImageManifest, type ImageManifest } from '../manifest.ts';
import { shortKey, type ArtifactPaths } from '../paths.ts';
import { readTar } from './tar.ts';
import { unpackLayer, type UnpackStats } from './unpack.ts';
import type { LayerCompression } from './media.ts';
import { boundedBytes, imageLimits, type ImageLimits } from './limits.ts';

/** Bump when the unpacker's output for the same tar changes: recorded in every OCI image. */
export const OCI_UNPACK_VERSION = 1;

export function ociLayerName(diffId: string): string {
  return `oci-${shortKey(diffId)}`;
}

export function ociLayerDir(paths: ArtifactPaths, diffId: string): string {
  return path.join(paths.layers, ociLayerName(diffId));
}

export function ociImageId(configDigest: string): string {
  return `oci-${shortKey(configDigest)}`;
}

export function refFile(paths: ArtifactPaths, ref: string): string {
  return path.join(paths.refs, `${encodeURIComponent(ref)}.json`);
}

export interface OciLayerMeta {
  schema: 1;
  name: string;
  /** The full diff_id. */
  key: string;
  compressed_digest: string | null;
  media_type: string;
  source: string;
  unpack_version: number;
  stats: UnpackStats;
  built_at: string;
  seconds: number;
}

export interface RefRecord {
  ref: string;
  image: string;
  digest: string;
  manifest_digest: string | null;
  updated_at: string;
}

/** The meta of an unpacked layer, or undefined; throws when the dir holds a different diff_id. */
export async function readLayerMeta(paths: ArtifactPaths, diffId: string): Promise<OciLayerMeta | undefined> {
  const dir = ociLayerDir(paths, diffId);
  let meta: OciLayerMeta;
  try {
    meta = JSON.parse(await fs.readFile(path.join(dir, 'layer.json'), 'utf8')) as OciLayerMeta;
  } catch {
    return undefined;
  }
  if (meta.key !== diffId) throw new ImageBuildError(ociLayerName(diffId), `${dir} holds layer ${meta.key}, not ${diffId} (short-key collision)`, `remove ${dir} and pull again`);
  return meta;
}

/**
 * A verified, decompressed tar stream of a layer file: its sha256 must equal
 * `diffId` once the unpacker has read it to the end.
 */
function layerSource(file: string, compression: LayerCompression): Readable {
  const input = createReadStream(file, { highWaterMark: 1024 * 1024 });
  if (compression === 'none') return input;
  return pipeline(input, createGunzip({ chunkSize: 256 * 1024 }), () => undefined);
}

async function* hashing(src: AsyncIterable<Buffer>, h: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  for await (const c of src) {
    h.update(c);
    yield c;
  }
}

export interface LayerInput {
  diffId: string;
  /** A local file holding the (verified) compressed blob, or the plain tar. */
  file: string;
  compression: LayerCompression;
  compressedDigest: string | null;
  mediaType: string;
  /** For messages: where the layer came from. */
  source: string;
  /** Bounds on the uncompressed stream, entries and path depth. Default: imageLimits() (the environment). */
  limits?: ImageLimits;
}

/** Unpack `input` into `rootfs` (an empty dir), checking its diff_id. */
export async function unpackVerified(input: LayerInput, rootfs: string): Promise<UnpackStats> {
  const h = createHash('sha256');
  const limits = input.limits ?? imageLimits();
  let stats: UnpackStats;
  try {
    // Bounded as it is decompressed: a gzip bomb stops at the limit, not at a full disk.
    const tarStream = boundedBytes(layerSource(input.file, input.compression), 'maxUncompressedBytes', limits, input.source);
    stats = await unpackLayer(readTar(hashing(tarStream, h)), rootfs, { limits });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'Z_DATA_ERROR' || /incorrect header check|invalid .* code|unexpected end of file/i.test((e as Error).message)) {
      throw new BlobVerificationError(input.compressedDigest ?? input.diffId, input.source, `its gzip stream is corrupt (${(e as Error).message})`);
    }
    throw e;
  }
  const got = `sha256:${h.digest('hex')}`;
  if (got !== input.diffId) throw new BlobVerificationError(input.diffId, input.source, `the uncompressed layer hashes to ${got}, not to its diff_id`);
  return stats;
}

const inflightLayers = new Map<string, Promise<{ dir: string; cached: boolean }>>();

/**
 * The unpacked layer for `diffId`: cached when it exists, else produced by
 * `fetch` (which returns where the blob now is) and unpacked. Concurrent
 * requests for the same layer in this process share one unpack; across
 * processes the rename decides and the loser's copy is dropped.
 */
export async function ensureLayer(
  paths: ArtifactPaths,
  diffId: string,
  fetch: () => Promise<LayerInput & { cleanup?: () => Promise<void> }>,
): Promise<{ dir: string; cached: boolean }> {
  if (await readLayerMeta(paths, diffId)) return { dir: ociLayerDir(paths, diffId), cached: true };
  let p = inflightLayers.get(diffId);
  if (!p) {
    p = (async () => {
      const started = Date.now();
      const built = await buildOnce(ociLayerDir(paths, diffId), paths.tmp, async (tmp) => {
        const input = await fetch();
        try {
          const rootfs = path.join(tmp, 'rootfs');
          await fs.mkdir(rootfs, { mode: 0o755 });
          const stats = await unpackVerified(input, rootfs);
          const meta: OciLayerMeta = {
            schema: 1, name: ociLayerName(diffId), key: diffId, compressed_digest: input.compressedDigest, media_type: input.mediaType,
            source: input.source, unpack_version: OCI_UNPACK_VERSION, stats, built_at: new Date().toISOString(), seconds: (Date.now() - started) / 1000,
          };
          await fs.writeFile(path.join(tmp, 'layer.json'), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
        } finally {
          await input.cleanup?.();
        }
      });
      if (built.cached) await readLayerMeta(paths, diffId); // a concurrent winner: check it is the same layer
      return built;
    })().finally(() => inflightLayers.delete(diffId));
    inflightLayers.set(diffId, p);
  }
  return p;
}

export async function readImageRecord(paths: ArtifactPaths, id: string): Promise<ImageManifest | undefined> {
  const file = path.join(paths.images, `${id}.json`);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const m = parseImageManifest(text, file);
  return m.kind === 'oci' ? m : undefined;
}

export async function writeImageRecord(paths: ArtifactPaths, m: ImageManifest): Promise<void> {
  await writeFileAtomic(path.join(paths.images, `${m.id}.json`), `${JSON.stringify(m, null, 2)}\n`);
}

/** Whether every layer of a record is present (an interrupted gc or a manual rm can remove them). */
export async function recordComplete(paths: ArtifactPaths, m: ImageManifest): Promise<boolean> {
  for (const rel of m.layers) if (!(await exists(path.join(paths.root, rel)))) return false;
  return true;
}

export async function readRef(paths: ArtifactPaths, ref: string): Promise<RefRecord | undefined> {
  try {
    return JSON.parse(await fs.readFile(refFile(paths, ref), 'utf8')) as RefRecord;
  } catch {
    return undefined;
  }
}

export async function writeRef(paths: ArtifactPaths, rec: RefRecord): Promise<void> {
  await writeFileAtomic(refFile(paths, rec.ref), `${JSON.stringify(rec, null, 2)}\n`);
}

export async function listRefs(paths: ArtifactPaths): Promise<RefRecord[]> {
  const names = await fs.readdir(paths.refs).catch(() => [] as string[]);
  const out: RefRecord[] = [];
  for (const n of names.sort()) {
    if (!n.endsWith('.json')) continue;
    const rec = await fs.readFile(path.join(paths.refs, n), 'utf8').then((t) => JSON.parse(t) as RefRecord, () => undefined);
    if (rec) out.push(rec);
  }
  return out;
}

export async function listImageRecords(paths: ArtifactPaths): Promise<ImageManifest[]> {
  const names = await fs.readdir(paths.images).catch(() => [] as string[]);
  const out: ImageManifest[] = [];
  for (const n of names.sort()) {
    if (!n.startsWith('oci-') || !n.endsWith('.json')) continue;
    const m = await readImageRecord(paths, n.slice(0, -5)).catch(() => undefined);
    if (m) out.push(m);
  }
  return out;
}
