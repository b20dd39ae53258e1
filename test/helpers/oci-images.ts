/**
 * Test images built in code: a small tar writer (ustar + pax for long names
 * and xattrs, any path — hostile ones included), and OCI/Docker image
 * assembly: blobs, manifests, multi-arch indexes, `docker save` archives and
 * OCI layout tarballs, plus a push to a registry over HTTP (the v2 upload
 * protocol: POST, then PUT with the digest).
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fs from 'node:fs';

export type TarSpec =
  | { type: 'file'; path: string; content?: string | Buffer; mode?: number; uid?: number; gid?: number; mtime?: number; xattrs?: Record<string, string | Buffer> }
  | { type: 'dir'; path: string; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'hardlink'; path: string; target: string }
  | { type: 'char' | 'block'; path: string; major: number; minor: number }
  | { type: 'fifo'; path: string };

const TYPEFLAG = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(fields: { name: string; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname?: string; major?: number; minor?: number }): Buffer {
  const h = Buffer.alloc(512);
  h.write(fields.name, 0, 100, 'utf8');
  h.write(octal(fields.mode, 8), 100, 'ascii');
  h.write(octal(fields.uid, 8), 108, 'ascii');
  h.write(octal(fields.gid, 8), 116, 'ascii');
  h.write(octal(fields.size, 12), 124, 'ascii');
  h.write(octal(fields.mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(fields.type, 156, 'ascii');
  if (fields.linkname) h.write(fields.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(octal(fields.major ?? 0, 8), 329, 'ascii');
  h.write(octal(fields.minor ?? 0, 8), 337, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

function pad(b: Buffer): Buffer {
  const rest = b.length % 512;
  return rest ? Buffer.concat([b, Buffer.alloc(512 - rest)]) : b;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** An uncompressed tar archive of the entries, in order. */
export function tar(entries: TarSpec[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const content = e.type === 'file' ? (typeof e.content === 'string' || e.content === undefined ? Buffer.from(e.content ?? '') : e.content) : Buffer.alloc(0);
    const pax: Buffer[] = [];
    if (Buffer.byteLength(e.path) > 99) pax.push(paxRecord('path', Buffer.from(e.path)));
    const link = e.type === 'symlink' || e.type === 'hardlink' ? e.target : '';
    if (Buffer.byteLength(link) > 99) pax.push(paxRecord('linkpath', Buffer.from(link)));
    if (e.type === 'file') for (const [k, v] of Object.entries(e.xattrs ?? {})) pax.push(paxRecord(`SCHILY.xattr.${k}`, Buffer.from(v)));
    if (pax.length) {
      const data = Buffer.concat(pax);
      out.push(header({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0, type: 'x' }), pad(data));
    }
    const dflt = e.type === 'dir' ? 0o755 : 0o644;
    out.push(header({
      name: e.path, mode: ('mode' in e && e.mode !== undefined ? e.mode : dflt), uid: 'uid' in e ? e.uid ?? 0 : 0, gid: 'gid' in e ? e.gid ?? 0 : 0,
      size: content.length, mtime: 'mtime' in e ? e.mtime ?? 1_700_000_000 : 1_700_000_000, type: TYPEFLAG[e.type], linkname: link,
      major: 'major' in e ? e.major : 0, minor: 'minor' in e ? e.minor : 0,
    }));
    if (content.length) out.push(pad(content));
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

/** The host's static busybox and the applets test images use, as tar entries under /bin. */
export function busyboxEntries(applets = ['sh', 'ls', 'cat', 'env', 'pwd', 'echo', 'id', 'stat', 'mkdir', 'sleep', 'test', 'true']): TarSpec[] {
  const bin = fs.readFileSync('/bin/busybox');
  return [
    { type: 'dir', path: 'bin/' },
    { type: 'file', path: 'bin/busybox', content: bin, mode: 0o755 },
    ...applets.map((a): TarSpec => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
  ];
}

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface BuiltImage {
  /** digest → bytes of every blob (config, layers, manifest). */
  blobs: Map<string, Buffer>;
  config: Buffer;
  configDigest: string;
  manifest: Buffer;
  manifestDigest: string;
  /** Uncompressed layer tars, bottom first. */
  layerTars: Buffer[];
  layerDigests: string[];
  diffIds: string[];
}

export interface ImageSpec {
  layers: TarSpec[][] | Buffer[];
  env?: string[];
  cmd?: string[];
  entrypoint?: string[];
  workingDir?: string;
  user?: string;
  architecture?: string;
  labels?: Record<string, string>;
  /** gzip layers (default) or keep them plain tars. */
  gzip?: boolean;
  /** Docker media types instead of OCI ones. */
  docker?: boolean;
  /** `layers` are already gzip-compressed; these are their uncompressed tars (for diff_ids). */
  precompressed?: Buffer[];
}

export function buildImage(spec: ImageSpec): BuiltImage {
  const given = spec.layers.map((l) => (Buffer.isBuffer(l) ? l : tar(l)));
  const tars = spec.precompressed ?? given;
  const gz = spec.precompressed ? true : spec.gzip ?? true;
  const blobs = new Map<string, Buffer>();
  const layerBlobs = spec.precompressed ? given : tars.map((t) => (gz ? gzipSync(t, { level: 1 }) : t));
  const diffIds = tars.map((t) => sha256(t));
  const config = Buffer.from(JSON.stringify({
    architecture: spec.architecture ?? 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z',
    config: { Env: spec.env ?? ['PATH=/bin'], Cmd: spec.cmd ?? null, Entrypoint: spec.entrypoint ?? null, WorkingDir: spec.workingDir ?? '', User: spec.user ?? '', Labels: spec.labels ?? {} },
    rootfs: { type: 'layers', diff_ids: diffIds },
  }));
  const configDigest = sha256(config);
  blobs.set(configDigest, config);
  const layerDigests = layerBlobs.map((b) => {
    const d = sha256(b);
    blobs.set(d, b);
    return d;
  });
  const layerType = spec.docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : gz ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar';
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: spec.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: spec.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: layerBlobs.map((b, i) => ({ mediaType: layerType, digest: layerDigests[i], size: b.length })),
  }));
  const manifestDigest = sha256(manifest);
  blobs.set(manifestDigest, manifest);
  return { blobs, config, configDigest, manifest, manifestDigest, layerTars: tars, layerDigests, diffIds };
}

/** An OCI index over per-platform manifests. */
export function buildIndex(entries: Array<{ image: BuiltImage; platform: { os: string; architecture: string; variant?: string } }>): { index: Buffer; digest: string } {
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: entries.map((e) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: e.image.manifestDigest, size: e.image.manifest.length, platform: e.platform })),
  }));
  return { index, digest: sha256(index) };
}

/** A `docker save` (legacy layout) archive of one image. */
export function dockerSaveArchive(img: BuiltImage, repoTags: string[]): Buffer {
  const hex = (d: string) => d.slice('sha256:'.length);
  const entries: TarSpec[] = [{ type: 'file', path: `${hex(img.configDigest)}.json`, content: img.config }];
  const layers: string[] = [];
  img.layerTars.forEach((t, i) => {
    const dir = hex(img.diffIds[i]!).slice(0, 64);
    entries.push({ type: 'dir', path: `${dir}/` }, { type: 'file', path: `${dir}/layer.tar`, content: t }, { type: 'file', path: `${dir}/VERSION`, content: '1.0' });
    layers.push(`${dir}/layer.tar`);
  });
  entries.push({ type: 'file', path: 'manifest.json', content: JSON.stringify([{ Config: `${hex(img.configDigest)}.json`, RepoTags: repoTags, Layers: layers }]) });
  return tar(entries);
}

/** An OCI image-layout archive: oci-layout, index.json and blobs/sha256/*. */
export function ociLayoutArchive(img: BuiltImage, refName?: string, extraBlobs: Map<string, Buffer> = new Map(), topManifest?: { bytes: Buffer; digest: string; mediaType: string }): Buffer {
  const entries: TarSpec[] = [
    { type: 'file', path: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { type: 'dir', path: 'blobs/' }, { type: 'dir', path: 'blobs/sha256/' },
  ];
  const top = topManifest ?? { bytes: img.manifest, digest: img.manifestDigest, mediaType: 'application/vnd.oci.image.manifest.v1+json' };
  entries.push({ type: 'file', path: 'index.json', content: JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.bytes.length, ...(refName ? { annotations: { 'org.opencontainers.image.ref.name': refName } } : {}) }],
  }) });
  for (const [d, b] of [...img.blobs, ...extraBlobs]) entries.push({ type: 'file', path: `blobs/sha256/${d.slice(7)}`, content: b });
  return tar(entries);
}

/** Push blobs and a manifest (or index) to a v2 registry at `base` (http://127.0.0.1:port). */
export async function pushImage(base: string, repo: string, tag: string, img: BuiltImage, top?: { bytes: Buffer; mediaType: string; extra?: BuiltImage[] }): Promise<void> {
  const all = [img, ...(top?.extra ?? [])];
  for (const im of all) {
    for (const [digest, bytes] of im.blobs) {
      if (digest === im.manifestDigest) continue;
      const head = await fetch(`${base}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
      if (head.ok) continue;
      const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      if (start.status !== 202) throw new Error(`upload start ${start.status}: ${await start.text()}`);
      const loc = new URL(start.headers.get('location')!, base);
      loc.searchParams.set('digest', digest);
      const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': 'application/octet-stream' } });
      if (put.status !== 201) throw new Error(`upload ${digest} ${put.status}: ${await put.text()}`);
    }
  }
  const putManifest = async (ref: string, bytes: Buffer, type: string) => {
    const r = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': type } });
    if (r.status !== 201) throw new Error(`manifest ${ref} ${r.status}: ${await r.text()}`);
  };
  const type = (m: Buffer) => (JSON.parse(m.toString()) as { mediaType: string }).mediaType;
  if (top) {
    for (const im of all) await putManifest(im.manifestDigest, im.manifest, type(im.manifest));
    await putManifest(tag, top.bytes, top.mediaType);
  } else {
    await putManifest(tag, img.manifest, type(img.manifest));
  }
}
