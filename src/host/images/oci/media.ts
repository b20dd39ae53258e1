/**
 * OCI and Docker image documents: media types, parsing with validation,
 * platform selection in manifest lists / OCI indexes, and the image config
 * fields Hearth honours. Pure: no I/O.
 */

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestV1: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** What we ask registries for, best first. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

export type LayerCompression = 'gzip' | 'none';

/** A malformed or unsupported image document. */
export class ImageFormatError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'ImageFormatError';
  }
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  urls?: string[];
  annotations?: Record<string, string>;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface IndexDoc {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

export interface ManifestDoc {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  /** Bottom first, as in the document. */
  layers: Descriptor[];
}

/** The parts of an image config (`config` + `rootfs`) Hearth uses. */
export interface ImageConfig {
  architecture: string;
  os: string;
  env: string[];
  entrypoint: string[] | null;
  cmd: string[] | null;
  workingDir: string;
  user: string;
  labels: Record<string, string>;
  exposedPorts: string[];
  /** sha256 of each uncompressed layer tar, bottom first. */
  diffIds: string[];
  created: string | null;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(bytes: Buffer | string, what: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'));
  } catch (e) {
    throw new ImageFormatError(`${what} is not JSON: ${(e as Error).message}`);
  }
  if (!isObj(v)) throw new ImageFormatError(`${what} is not a JSON object`);
  return v;
}

function descriptor(v: unknown, what: string): Descriptor {
  if (!isObj(v)) throw new ImageFormatError(`${what} is not an object`);
  const { mediaType, digest, size } = v;
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw new ImageFormatError(`${what} has no sha256 digest (got ${JSON.stringify(digest)})`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ImageFormatError(`${what} has an invalid size ${JSON.stringify(size)}`);
  const d: Descriptor = { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size };
  if (isObj(v.platform) && typeof v.platform.architecture === 'string' && typeof v.platform.os === 'string') {
    d.platform = { architecture: v.platform.architecture, os: v.platform.os };
    if (typeof v.platform.variant === 'string') d.platform.variant = v.platform.variant;
  }
  if (Array.isArray(v.urls)) d.urls = v.urls.filter((u): u is string => typeof u === 'string');
  if (isObj(v.annotations)) d.annotations = Object.fromEntries(Object.entries(v.annotations).filter(([, x]) => typeof x === 'string')) as Record<string, string>;
  return d;
}

/**
 * Parse a manifest or index. `contentType` is the registry's header (used
 * when the document has no mediaType of its own, as OCI allows).
 */
export function parseManifestDoc(bytes: Buffer | string, contentType = ''): IndexDoc | ManifestDoc {
  const doc = parseJson(bytes, 'manifest');
  const type = (typeof doc.mediaType === 'string' && doc.mediaType) || contentType.split(';')[0]!.trim();
  if (doc.schemaVersion === 1 || type === MEDIA.dockerManifestV1) {
    throw new ImageFormatError('the registry sent a Docker schema 1 manifest, which is deprecated and unsupported', 'push the image again with a current Docker or use an OCI manifest');
  }
  if (doc.schemaVersion !== 2) throw new ImageFormatError(`unsupported manifest schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  if (Array.isArray(doc.manifests) && (type === MEDIA.ociIndex || type === MEDIA.dockerList || !doc.config)) {
    return { kind: 'index', mediaType: type || MEDIA.ociIndex, manifests: doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`)) };
  }
  if (!isObj(doc.config) || !Array.isArray(doc.layers)) throw new ImageFormatError(`manifest of type ${JSON.stringify(type)} has no config and layers`);
  if (type && type !== MEDIA.ociManifest && type !== MEDIA.dockerManifest) throw new ImageFormatError(`unsupported manifest media type ${JSON.stringify(type)}`);
  return {
    kind: 'manifest',
    mediaType: type || MEDIA.ociManifest,
    config: descriptor(doc.config, 'config'),
    layers: doc.layers.map((l, i) => descriptor(l, `layers[${i}]`)),
  };
}

export const HOST_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

function platformText(p?: Platform): string {
  return p ? `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : 'unknown';
}

/**
 * The entry of an index for `want` (linux/amd64). Attestation manifests
 * (`unknown/unknown`, buildkit's `vnd.docker.reference.type`) are never
 * chosen. Throws listing the platforms the index offers.
 */
export function selectPlatform(index: IndexDoc, want: Platform = HOST_PLATFORM): Descriptor {
  const candidates = index.manifests.filter((m) => !m.annotations?.['vnd.docker.reference.type']);
  const match = candidates.find((m) => m.platform?.os === want.os && m.platform.architecture === want.architecture && (!want.variant || m.platform.variant === want.variant));
  if (match) return match;
  const offered = [...new Set(candidates.map((m) => platformText(m.platform)))];
  throw new ImageFormatError(`the image has no ${platformText(want)} variant (it offers: ${offered.join(', ') || 'nothing'})`,
    'Hearth runs x86-64 Linux workspaces: use an image built for linux/amd64');
}

export function layerCompression(mediaType: string): LayerCompression {
  switch (mediaType) {
    case MEDIA.ociLayerGzip:
    case MEDIA.dockerLayerGzip:
    case MEDIA.ociLayerNondistGzip:
    case MEDIA.dockerForeignLayer:
      return 'gzip';
    case MEDIA.ociLayer:
    case '':
      return 'none';
    case MEDIA.ociLayerZstd:
      throw new ImageFormatError('zstd-compressed layers are not supported by this Node runtime', 'push the image with gzip layers (docker buildx --output compression=gzip)');
    default:
      throw new ImageFormatError(`unsupported layer media type ${JSON.stringify(mediaType)}`);
  }
}

function stringList(v: unknown, what: string): string[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ImageFormatError(`image config ${what} must be a list of strings`);
  return v as string[];
}

/** Parse an image config blob (OCI or Docker); checks the fields Hearth relies on. */
export function parseImageConfig(bytes: Buffer | string): ImageConfig {
  const doc = parseJson(bytes, 'image config');
  const c = isObj(doc.config) ? doc.config : {};
  const rootfs = isObj(doc.rootfs) ? doc.rootfs : {};
  if (rootfs.type !== 'layers') throw new ImageFormatError(`image config rootfs.type must be "layers" (got ${JSON.stringify(rootfs.type)})`);
  const diffIds = stringList(rootfs.diff_ids, 'rootfs.diff_ids') ?? [];
  for (const d of diffIds) if (!DIGEST.test(d)) throw new ImageFormatError(`image config diff_id ${JSON.stringify(d)} is not a sha256 digest`);
  const env = stringList(c.Env, 'Env') ?? [];
  for (const e of env) if (!e.includes('=')) throw new ImageFormatError(`image config Env entry ${JSON.stringify(e)} is not KEY=value`);
  return {
    architecture: typeof doc.architecture === 'string' ? doc.architecture : '',
    os: typeof doc.os === 'string' ? doc.os : '',
    env,
    entrypoint: stringList(c.Entrypoint, 'Entrypoint'),
    cmd: stringList(c.Cmd, 'Cmd'),
    workingDir: typeof c.WorkingDir === 'string' && c.WorkingDir !== '' ? c.WorkingDir : '/',
    user: typeof c.User === 'string' && c.User !== '' ? c.User : 'root',
    labels: isObj(c.Labels) ? Object.fromEntries(Object.entries(c.Labels).filter(([, v]) => typeof v === 'string')) as Record<string, string> : {},
    exposedPorts: isObj(c.ExposedPorts) ? Object.keys(c.ExposedPorts) : [],
    diffIds,
    created: typeof doc.created === 'string' ? doc.created : null,
  };
}

/** A manifest's layers must line up with the config's diff_ids. */
export function checkLayersMatchConfig(manifest: ManifestDoc, config: ImageConfig): void {
  if (manifest.layers.length !== config.diffIds.length) {
    throw new ImageFormatError(`the manifest lists ${manifest.layers.length} layers but the config has ${config.diffIds.length} diff_ids`);
  }
  if (config.os && config.os !== 'linux') throw new ImageFormatError(`the image is for ${config.os}, not linux`);
  if (config.architecture && config.architecture !== 'amd64') {
    throw new ImageFormatError(`the image is for ${config.architecture}, not amd64`, 'Hearth runs x86-64 Linux workspaces: use an image built for linux/amd64');
  }
}
