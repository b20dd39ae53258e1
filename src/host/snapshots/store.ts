/**
 * Snapshots on the host, per data dir:
 *
 *   <dataDir>/snapshots/<id>/snapshot.json   what it is (driver, format, kinds, base image, size)
 *   <dataDir>/snapshots/<id>/…               the driver's payload (container: upper/)
 *   <dataDir>/snapshots/.tmp-<id>.<pid>.<rand>   being made; renamed into place when complete
 *
 * A snapshot is also an image: `snapshot:<id>` resolves to the snapshot's
 * writable layer stacked on its workspace's image layers, so a new
 * workspace created from it starts with its files at once (overlay reads
 * the copied upper dir, whiteouts and opaque dirs included, as a lower
 * layer). Nothing is copied for that; the snapshot stays read-only.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { StateConflict } from '../../core/errors.ts';
import { hashKey } from '../images/hash.ts';
import { ImageNotFoundError, InvalidImageError } from '../images/errors.ts';
import type { ResolvedImage } from '../images/types.ts';
import type { DriverName, DriverSnapshot } from '../drivers/driver.ts';

export const SNAPSHOT_IMAGE_PREFIX = 'snapshot:';
export const SNAPSHOT_ID_RE = /^snap_[a-z0-9]{8,40}$/;
/** Snapshots of workspaces made from snapshots: a chain this deep is refused (overlay stacks it all). */
const MAX_CHAIN = 16;

export interface SnapshotMeta {
  schema: 1;
  id: string;
  workspace_id: string;
  driver: DriverName;
  format: string;
  kinds: DriverSnapshot['kinds'];
  bytes: number;
  /** The image name the workspace runs (may itself be `snapshot:<id>`). */
  image: string;
  /** The resolved image's id and digest at snapshot time: a restore or a new workspace uses the same layers. */
  image_id: string;
  image_digest: string;
  created_at: string;
  seconds: number;
}

/** A snapshot operation that does not fit the workspace or host as they are (409 through core's StateConflict). */
export class SnapshotError extends StateConflict {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = 'SnapshotError';
  }
}

export function isSnapshotImage(name: string): boolean {
  return name.trim().toLowerCase().startsWith(SNAPSHOT_IMAGE_PREFIX);
}

export function snapshotImageName(id: string): string {
  return `${SNAPSHOT_IMAGE_PREFIX}${id}`;
}

export class SnapshotStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    if (!SNAPSHOT_ID_RE.test(id)) throw new SnapshotError(`invalid snapshot id ${JSON.stringify(id)}`);
    return path.join(this.root, id);
  }

  /**
   * Make snapshot `id`: `fill(dir)` writes the payload into a scratch dir and
   * returns the meta; the dir is renamed into place only when complete, and
   * removed on any failure.
   */
  async create(id: string, fill: (dir: string) => Promise<Omit<SnapshotMeta, 'schema' | 'id' | 'created_at' | 'seconds'>>): Promise<SnapshotMeta> {
    const final = this.dir(id);
    const started = Date.now();
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
    const tmp = path.join(this.root, `.tmp-${id}.${process.pid}.${randomBytes(4).toString('hex')}`);
    await fs.mkdir(tmp, { mode: 0o700 });
    try {
      const partial = await fill(tmp);
      const meta: SnapshotMeta = { schema: 1, id, ...partial, created_at: new Date().toISOString(), seconds: (Date.now() - started) / 1000 };
      await fs.writeFile(path.join(tmp, 'snapshot.json'), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o600 });
      await fs.rename(tmp, final);
      return meta;
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
  }

  async read(id: string): Promise<SnapshotMeta | null> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.dir(id), 'snapshot.json'), 'utf8')) as SnapshotMeta;
    } catch (e) {
      if (e instanceof SnapshotError) throw e;
      return null;
    }
  }

  async remove(id: string): Promise<void> {
    await fs.rm(this.dir(id), { recursive: true, force: true });
  }

  /** Ids of complete snapshots on disk. */
  async list(): Promise<string[]> {
    return (await fs.readdir(this.root).catch(() => [] as string[])).filter((n) => SNAPSHOT_ID_RE.test(n)).sort();
  }

  /** Remove scratch dirs of snapshots whose process is gone. */
  async reapScratch(): Promise<string[]> {
    const out: string[] = [];
    for (const n of await fs.readdir(this.root).catch(() => [] as string[])) {
      const m = /^\.tmp-.*\.(\d+)\.[0-9a-f]{8}$/.exec(n);
      if (!m) continue;
      let alive = true;
      try {
        process.kill(Number(m[1]), 0);
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
      if (alive) continue;
      await fs.rm(path.join(this.root, n), { recursive: true, force: true });
      out.push(n);
    }
    return out;
  }

  /**
   * `snapshot:<id>` as an image: the snapshot's upper dir on top of the base
   * image's layers (resolved by `resolveBase`, the host's resolver).
   */
  async resolveImage(name: string, resolveBase: (name: string) => Promise<ResolvedImage>, depth = 0): Promise<ResolvedImage> {
    const id = name.trim().slice(SNAPSHOT_IMAGE_PREFIX.length);
    if (!SNAPSHOT_ID_RE.test(id)) throw new ImageNotFoundError(name, 'a snapshot id looks like snap_<letters and digits>');
    if (depth >= MAX_CHAIN) throw new InvalidImageError(name, `it is a snapshot of a snapshot ${MAX_CHAIN} levels deep`, 'create the workspace from an image instead');
    const meta = await this.read(id);
    if (!meta) throw new ImageNotFoundError(name, `there is no snapshot ${id} on this host`, 'list snapshots with GET /workspace/:id/snapshots');
    const base = isSnapshotImage(meta.image)
      ? await this.resolveImage(meta.image, resolveBase, depth + 1)
      : await resolveBase(meta.image_id); // the concrete image (catalog id or oci-…), not a name that may have moved
    const image: ResolvedImage = {
      ...base,
      id: snapshotImageName(id),
      ref: snapshotImageName(id),
      digest: hashKey({ snapshot: id, base: base.digest }),
      snapshot: { id, dir: this.dir(id), format: meta.format, kinds: [...meta.kinds], driver: meta.driver },
    };
    // The container format is a plain overlay layer; other formats are the driver's to apply.
    if (meta.format === 'overlay-upper') image.layers = [path.join(this.dir(id), 'upper'), ...base.layers];
    return image;
  }
}
