/**
 * Per-driver artifacts of an image (an ext4 or erofs base disk for the
 * microVM driver, …), built once per image and kept next to its layers:
 *
 *   derived/<kind>/<key16>/   the artifact, whatever `build` puts there
 *   derived/<kind>/<key16>/artifact.json   { kind, version, image_digest, built_at, seconds }
 *
 * The key is a hash of the image digest, the kind and the builder's version,
 * so a rebuilt image or a new builder gets a new artifact and the old one is
 * garbage once nothing names its image (gc.ts). Built in tmp/ and renamed
 * into place; concurrent requests in one process share one build.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { buildOnce } from './atomic.ts';
import { hashKey } from './hash.ts';
import { artifactPaths, shortKey } from './paths.ts';
import type { ResolvedImage } from './types.ts';

export interface DerivedArtifact {
  dir: string;
  cached: boolean;
}

export interface ArtifactMeta {
  kind: string;
  version: number;
  image_digest: string;
  image: string;
  built_at: string;
  seconds: number;
}

export function derivedKey(kind: string, version: number, imageDigest: string): string {
  return hashKey({ kind, version, image: imageDigest });
}

const inflight = new Map<string, Promise<DerivedArtifact>>();

export async function ensureImageArtifact(opts: {
  artifactsDir?: string;
  image: Pick<ResolvedImage, 'id' | 'digest' | 'layers'>;
  /** `[a-z0-9-]+`, e.g. `ext4-base`. */
  kind: string;
  /** Bump when `build` changes what it produces. */
  version: number;
  /** Fill `dir` (empty, on the artifacts filesystem) from the image's layers (top first). */
  build: (dir: string, image: Pick<ResolvedImage, 'id' | 'digest' | 'layers'>) => Promise<void>;
}): Promise<DerivedArtifact> {
  if (!/^[a-z0-9-]+$/.test(opts.kind)) throw new Error(`artifact kind ${JSON.stringify(opts.kind)}: use [a-z0-9-]`);
  const paths = artifactPaths(opts.artifactsDir);
  const final = path.join(paths.derived, opts.kind, shortKey(derivedKey(opts.kind, opts.version, opts.image.digest)));
  let p = inflight.get(final);
  if (!p) {
    p = (async () => {
      const started = Date.now();
      return buildOnce(final, paths.tmp, async (tmp) => {
        await opts.build(tmp, opts.image);
        const meta: ArtifactMeta = {
          kind: opts.kind, version: opts.version, image_digest: opts.image.digest, image: opts.image.id,
          built_at: new Date().toISOString(), seconds: (Date.now() - started) / 1000,
        };
        await fs.writeFile(path.join(tmp, 'artifact.json'), `${JSON.stringify(meta, null, 2)}\n`);
      });
    })().finally(() => inflight.delete(final));
    inflight.set(final, p);
  }
  return p;
}
