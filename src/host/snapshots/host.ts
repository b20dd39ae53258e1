/**
 * The host side of snapshots for LocalHost: turns "snapshot workspace W as
 * S" into a driver call writing into the snapshot store, and back. The
 * control plane (src/control/snapshots.ts) owns ids, ownership and state;
 * this owns the bytes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Driver, DriverName, SandboxSpec, SandboxState, SnapshotSupport } from '../drivers/driver.ts';
import type { SandboxRef } from '../host-driver.ts';
import type { ResolvedImage } from '../images/types.ts';
import { SnapshotError, SnapshotStore, isSnapshotImage, type SnapshotMeta } from './store.ts';
import { packLayer, type PackResult, type PathFilter } from './archive.ts';
import type { HostSnapshot, SnapshotOptions } from './types.ts';

const NO_SNAPSHOTS: SnapshotSupport = { filesystem: false, memory: false, reason: 'this driver does not take snapshots' };

export class HostSnapshots {
  readonly store: SnapshotStore;

  constructor(private readonly o: {
    dataDir: string;
    driver: (name: DriverName) => Driver | undefined;
    spec: (ws: SandboxRef) => Promise<SandboxSpec>;
  }) {
    this.store = new SnapshotStore(path.join(o.dataDir, 'snapshots'));
  }

  support(driver: DriverName): SnapshotSupport {
    return this.o.driver(driver)?.snapshotSupport?.() ?? NO_SNAPSHOTS;
  }

  private driverFor(ws: SandboxRef, op: 'snapshot' | 'restoreSnapshot'): Driver {
    const d = this.o.driver(ws.driver);
    if (!d?.[op]) throw new SnapshotError(`the ${ws.driver} driver does not take snapshots`, 'use the container driver for this workspace');
    return d;
  }

  async take(ws: SandboxRef, id: string, opts: SnapshotOptions): Promise<HostSnapshot> {
    const d = this.driverFor(ws, 'snapshot');
    const support = this.support(ws.driver);
    const spec = await this.o.spec(ws);
    await this.store.reapScratch();
    let state: SandboxState = 'stopped';
    const meta = await this.store.create(id, async (dir) => {
      const r = await d.snapshot!(spec, { dir, memory: (opts.memory ?? true) && support.memory, after: opts.after });
      state = r.state;
      return {
        workspace_id: ws.id, driver: ws.driver, format: r.format, kinds: r.kinds, bytes: r.bytes,
        image: ws.image, image_id: spec.image.id, image_digest: spec.image.digest,
      };
    });
    return { ...meta, state };
  }

  async restore(ws: SandboxRef, id: string): Promise<{ state: SandboxState; meta: SnapshotMeta }> {
    const d = this.driverFor(ws, 'restoreSnapshot');
    const meta = await this.store.read(id);
    if (!meta) throw new SnapshotError(`snapshot ${id} is not on this host`);
    if (meta.driver !== ws.driver) throw new SnapshotError(`snapshot ${id} was taken by the ${meta.driver} driver; workspace ${ws.id} runs on ${ws.driver}`);
    const spec = await this.o.spec(ws);
    const r = await d.restoreSnapshot!(spec, this.store.dir(id), meta);
    return { state: r.state, meta };
  }

  async remove(id: string): Promise<void> {
    await this.store.remove(id);
  }

  private get archives(): string {
    return path.join(this.o.dataDir, 'archives');
  }

  /** Export a (container-format) snapshot as `<dataDir>/archives/<workspace>/<version>.tar.gz`. */
  async export(id: string, name: { workspaceId: string; version: string }, filter: PathFilter): Promise<PackResult & { file: string }> {
    if (!/^ws_[a-z0-9]+$/.test(name.workspaceId) || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name.version)) {
      throw new SnapshotError(`invalid archive name ${name.workspaceId}/${name.version}`);
    }
    const meta = await this.store.read(id);
    if (!meta) throw new SnapshotError(`snapshot ${id} is not on this host`);
    if (meta.format !== 'overlay-upper') throw new SnapshotError(`a ${meta.format} snapshot cannot be exported as an archive yet`);
    const file = path.join(this.archives, name.workspaceId, `${name.version}.tar.gz`);
    return { ...(await packLayer(path.join(this.store.dir(id), 'upper'), file, filter)), file };
  }

  /** Remove an archive file; only files under the archives dir. */
  async removeArchive(file: string): Promise<void> {
    const rel = path.relative(this.archives, path.resolve(file));
    if (rel.startsWith('..') || path.isAbsolute(rel) || !rel.endsWith('.tar.gz')) throw new SnapshotError(`refusing to delete ${file}: not an archive of this host`);
    await fs.rm(path.join(this.archives, rel), { force: true });
  }

  /** Resolve `snapshot:<id>` names; anything else goes to `base`. */
  resolve(name: string, base: (name: string) => Promise<ResolvedImage>): Promise<ResolvedImage> {
    return isSnapshotImage(name) ? this.store.resolveImage(name, base) : base(name);
  }
}
