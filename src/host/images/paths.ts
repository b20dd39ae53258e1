/**
 * Layout of the artifacts directory: everything `hearth setup` builds (Node
 * runtime, agent drives, image layers) lives here, keyed by content hash. It
 * is shared by every data dir on the host, so tests and several hearthd
 * instances reuse the same built artifacts instead of rebuilding them.
 *
 *   <root>/
 *     downloads/                npm tarballs (`npm pack`), verified by integrity
 *     node/<version>-<key>/     extracted official Node binary (bin/node)
 *     agent/<hash>/             agent drives (bin/node, bin/tini, lib/, agent.mjs)
 *     layers/<name>-<key>/      image layers: rootfs/ + layer.json
 *     layers/oci-<diff16>/      layers of pulled/imported images, keyed by diff_id (unpacked once, shared)
 *     images/<id>.json          built image manifests (point at layers); `oci-<config16>.json` for OCI images
 *     refs/<ref>.json           name → image (`docker.io/library/python:3.12-slim` → oci-…)
 *     derived/<kind>/<key16>/   per-driver artifacts of an image (disks, …), keyed by image digest
 *     tmp/                      build scratch, same filesystem (atomic rename)
 */
import path from 'node:path';

export const DEFAULT_ARTIFACTS_DIR = '/var/lib/hearth/artifacts';

/** The artifacts root: explicit parameter, then `HEARTH_ARTIFACTS_DIR`, then the default. */
export function artifactsRoot(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = explicit || env.HEARTH_ARTIFACTS_DIR || DEFAULT_ARTIFACTS_DIR;
  return path.resolve(chosen);
}

export interface ArtifactPaths {
  root: string;
  downloads: string;
  node: string;
  agent: string;
  layers: string;
  images: string;
  refs: string;
  derived: string;
  tmp: string;
}

export function artifactPaths(explicit?: string, env: NodeJS.ProcessEnv = process.env): ArtifactPaths {
  const root = artifactsRoot(explicit, env);
  return {
    root,
    downloads: path.join(root, 'downloads'),
    node: path.join(root, 'node'),
    agent: path.join(root, 'agent'),
    layers: path.join(root, 'layers'),
    images: path.join(root, 'images'),
    refs: path.join(root, 'refs'),
    derived: path.join(root, 'derived'),
    tmp: path.join(root, 'tmp'),
  };
}

/** Directory of one layer; its filesystem tree is `<dir>/rootfs`. */
export function layerDir(paths: ArtifactPaths, name: string, key: string): string {
  return path.join(paths.layers, `${name}-${shortKey(key)}`);
}

export function imageManifestPath(paths: ArtifactPaths, id: string): string {
  return path.join(paths.images, `${id}.json`);
}

/** First 16 hex digits of a `sha256:…` or bare hex key: enough to name a directory. */
export function shortKey(key: string): string {
  return key.replace(/^sha256:/, '').slice(0, 16);
}
