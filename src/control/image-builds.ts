/**
 * Dockerfile builds on the control plane (a Hearth extension): who may
 * build, what a built image is called, and who may use it.
 *
 * A build by a namespace's principal is named
 * `hearth.local/ns-<namespace>/<name>:<tag>`, and that namespace uses it as
 * `image: <name>[:<tag>]` at once; the operator may publish an image to
 * every namespace (`hearth.local/public/<name>:<tag>`). Another namespace's
 * unpublished image answers exactly as an image that does not exist, by
 * name, by ref and by id.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Principal } from '../auth/principal.ts';
import { receiveContext } from '../host/images/build/upload.ts';
import { cleanContextPath } from '../core/dockerfile/index.ts';
import { Forbidden, ValidationFailed } from '../core/errors.ts';
import type { HostDriver } from '../host/host-driver.ts';
import type { BuildEvent } from '../host/images/build/execute.ts';
import { BUILD_REGISTRY } from '../host/images/build/owner.ts';
import { ImageNotFoundError } from '../host/images/errors.ts';

const NAME_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export interface BuildRequest {
  /** `NAME[:TAG]` (tag `latest` when absent). */
  tag: string;
  contextDir: string;
  dockerfile: string;
  buildArgs?: Record<string, string>;
  /** Operator only: every namespace may use the image. */
  publish?: boolean;
  /** Operator only: build for this namespace. */
  namespace?: string | null;
}

export function parseTag(t: string): { name: string; tag: string } {
  const s = t.trim();
  const colon = s.lastIndexOf(':');
  const [name, tag] = colon > s.lastIndexOf('/') && colon >= 0 ? [s.slice(0, colon), s.slice(colon + 1)] : [s, 'latest'];
  if (!NAME_RE.test(name) || name.length > 128) throw new ValidationFailed('tag', `image name ${JSON.stringify(name)} must be lowercase letters, digits and . _ - / separators`, 'example: -t myapp:1');
  if (!TAG_RE.test(tag)) throw new ValidationFailed('tag', `tag ${JSON.stringify(tag)} must be letters, digits, _ . - (at most 128)`, 'example: -t myapp:1');
  if (name.startsWith(`${BUILD_REGISTRY}/`)) throw new ValidationFailed('tag', `name the image without ${BUILD_REGISTRY}/: Hearth adds it`);
  return { name, tag };
}

/** The scope part of a built image's ref. */
export function scopeOf(namespace: string | null, published: boolean): string {
  if (published) return 'public';
  return namespace === null ? 'operator' : `ns-${namespace.toLowerCase()}`;
}

export function builtRef(namespace: string | null, published: boolean, name: string, tag: string): string {
  return `${BUILD_REGISTRY}/${scopeOf(namespace, published)}/${name}:${tag}`;
}

export class ImageBuildService {
  constructor(private readonly host: HostDriver) {}

  /** Everything that can be refused before the build starts (so an API caller gets a plain JSON error). */
  prepare(p: Principal, req: Pick<BuildRequest, 'tag' | 'publish' | 'namespace'>): { name: string; tag: string; namespace: string | null; publish: boolean; ref: string } {
    if (!this.host.buildImage) throw new ValidationFailed('build', 'this host cannot build images');
    if (p.workspaceId) throw new Forbidden('a workspace-scoped token cannot build images');
    const publish = req.publish === true;
    if (publish && !p.admin) throw new Forbidden('only the operator may publish an image to every namespace');
    if (req.namespace !== undefined && req.namespace !== p.namespace && !p.admin) throw new Forbidden('a namespace principal builds only for its own namespace');
    const namespace = req.namespace !== undefined && p.admin ? req.namespace : p.namespace;
    const { name, tag } = parseTag(req.tag);
    return { name, tag, namespace, publish, ref: builtRef(namespace, publish, name, tag) };
  }

  /** An uploaded tar context, unpacked, and the Dockerfile read from it; `cleanup` removes it. */
  async receive(body: Readable, dockerfilePath = 'Dockerfile'): Promise<{ contextDir: string; dockerfile: string; cleanup: () => Promise<void> }> {
    const { dir, cleanup } = await receiveContext(body);
    try {
      const file = path.join(dir, cleanContextPath(dockerfilePath));
      const st = await fs.lstat(file).catch(() => undefined);
      if (!st?.isFile()) throw new ValidationFailed('dockerfile', `${dockerfilePath} is not a file in the build context`);
      return { contextDir: dir, dockerfile: await fs.readFile(file, 'utf8'), cleanup };
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  async build(p: Principal, req: BuildRequest, onEvent?: (e: BuildEvent) => void): Promise<{ image: string; ref: string; name: string; digest: string }> {
    const { name, tag, namespace, publish, ref } = this.prepare(p, req);
    if (!this.host.buildImage) throw new ValidationFailed('build', 'this host cannot build images');
    // FROM and COPY --from see what a create by this caller would see: its own and published builds, never another namespace's.
    const resolveName = async (n: string) => {
      if (/^snapshot:/i.test(n.trim()) && !p.admin) throw new ValidationFailed('dockerfile', `${n}: a snapshot base is available to operator builds only for now`, 'create a workspace from the snapshot and build from an image instead');
      return resolveBuiltName(this.host, p, namespace, n);
    };
    const record = await this.host.buildImage({ contextDir: req.contextDir, dockerfile: req.dockerfile, ref, buildArgs: req.buildArgs, owner: { namespace, published: publish }, resolveName }, onEvent);
    return { image: record.id, ref, name: `${name}:${tag}`, digest: record.digest };
  }
}

/**
 * What a create's `image` means for `namespace`: a built image's short name
 * becomes its ref (own first, then published), and a built image another
 * namespace owns is not found. Anything else is returned unchanged.
 */
export async function resolveBuiltName(host: HostDriver, p: Principal, namespace: string | null, image: string): Promise<string> {
  if (!host.imageBuildOwner) return image;
  const owner = await host.imageBuildOwner(image);
  if (owner) {
    if (!owner.published && owner.namespace !== namespace && !(p.admin && namespace === null)) {
      throw new ImageNotFoundError(image, 'there is no such image on this host', 'list images with GET /workspace/images');
    }
    return image;
  }
  let parsed: { name: string; tag: string };
  try {
    parsed = parseTag(image);
  } catch {
    return image;
  }
  for (const ref of [builtRef(namespace, false, parsed.name, parsed.tag), builtRef(null, true, parsed.name, parsed.tag)]) {
    if (await host.imageBuildOwner(ref)) return ref;
  }
  return image;
}
