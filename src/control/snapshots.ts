/**
 * The snapshot service (§12 `snapshots.*` plus list/get/delete extensions):
 * ids, ownership and state in the store; the bytes are the host's
 * (HostDriver.snapshot/restoreSnapshot/deleteSnapshot).
 *
 * - create: persist the row (`creating`), then ask the host; the row
 *   becomes `ready` or `failed` (with the error). `after` is applied by the
 *   workspace service ('stop' → a normal stop, 'paused' → a normal pause),
 *   so lifecycle state stays the workspace service's business.
 * - restore (latest, or `snapshot_id`): a running sandbox is stopped, its
 *   state replaced, and started again (paused again if it was paused);
 *   a stopped one stays stopped. The workspace keeps its state, id, IP and
 *   tokens: only its files go back in time.
 * - a snapshot outlives its workspace and is an image: `POST /workspace`
 *   with `image: "snapshot:<id>"` starts a new workspace with its files.
 *   A snapshot that a workspace runs on cannot be deleted.
 *
 * Snapshot operations on one workspace are serialized here; they do not
 * take the workspace service's own lock (not exported), so a stop racing a
 * restore is not excluded — both are idempotent on the host.
 */
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Db, WorkspaceTable } from '../store/db.ts';
import type { HostDriver } from '../host/host-driver.ts';
import type { SnapshotAfter, SnapshotSupport } from '../host/drivers/driver.ts';
import { KeyedMutex } from '../core/keyed-mutex.ts';
import { AlreadyExists, NotFound, StateConflict, ValidationFailed } from '../core/errors.ts';
import { randomId } from '../auth/secrets.ts';
import type { Principal } from '../auth/principal.ts';
import type { WorkspaceService } from './workspaces/index.ts';
import { sandboxRef, type Workspace } from './workspaces/row.ts';

/** The answer of `support()`, for the routes that show it (they do not import the host layer). */
export type { SnapshotSupport };

export interface SnapshotTable {
  id: string;
  workspace_id: string;
  owner: string;
  namespace: string | null;
  state: string;
  driver: string;
  format: string | null;
  kinds: string | null;
  size_bytes: number;
  after: string;
  image: string;
  image_digest: string | null;
  label: string | null;
  error: string | null;
  created_at: string;
  completed_at: string | null;
}

export interface ArchiveTable {
  workspace_id: string;
  version: string;
  owner: string;
  namespace: string | null;
  state: string;
  format: string;
  size_bytes: number;
  sha256: string | null;
  paths: string | null;
  exclude_paths: string | null;
  file: string | null;
  image: string | null;
  error: string | null;
  created_at: string;
  completed_at: string | null;
}

interface SnapshotDb {
  snapshots: SnapshotTable;
  archives: ArchiveTable;
  workspaces: WorkspaceTable;
}

/**
 * Whether `p` may see snapshot `id` — list, get and restore, and creating a
 * workspace from `snapshot:<id>` all ask this one rule: its own, narrowed
 * to its namespace or workspace scope.
 */
export async function snapshotVisible(db: Db, p: Principal, id: string): Promise<boolean> {
  return !!(await scopedSnapshots(db as unknown as Kysely<SnapshotDb>, p).where('id', '=', id).executeTakeFirst());
}

function scopedSnapshots(db: Kysely<SnapshotDb>, p: Principal) {
  let q = db.selectFrom('snapshots').selectAll().where('owner', '=', p.clientId);
  if (p.namespace !== null) q = q.where('namespace', '=', p.namespace);
  if (p.workspaceId !== null) q = q.where('workspace_id', '=', p.workspaceId);
  return q;
}

/** ArchiveInfo (§12): `version` plus what the archive is and where its file is. */
export interface Archive {
  version: string;
  workspace_id: string;
  status: 'creating' | 'ready' | 'failed';
  format: string;
  size: number;
  sha256: string | null;
  paths: string[];
  exclude_paths: string[];
  /** The archive file on the host (a gzip OCI layer tar), kept until deleted with delete_file. */
  file: string | null;
  /** The image the workspace runs: the archive applies on top of it. */
  image: string | null;
  error: string | null;
  created_at: string;
  completed_at: string | null;
}

export function archiveView(r: ArchiveTable): Archive {
  return {
    version: r.version, workspace_id: r.workspace_id, status: r.state as Archive['status'], format: r.format, size: r.size_bytes, sha256: r.sha256,
    paths: r.paths ? (JSON.parse(r.paths) as string[]) : [], exclude_paths: r.exclude_paths ? (JSON.parse(r.exclude_paths) as string[]) : [],
    file: r.file, image: r.image, error: r.error, created_at: r.created_at, completed_at: r.completed_at,
  };
}

export const ARCHIVE_FORMATS = ['tar.gz', 'tgz', 'oci-layer'] as const;
const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Parse the createArchive body: `{ version?, format?, vm_paths?, exclude_vm_paths? }`. */
export function parseArchiveRequest(body: Record<string, unknown>): { version: string | null; include: string[]; exclude: string[] } {
  const version = body.version ?? null;
  if (version !== null && (typeof version !== 'string' || !VERSION_RE.test(version))) {
    throw new ValidationFailed('version', 'version must be 1–64 of [A-Za-z0-9._-], starting with a letter or digit');
  }
  const format = body.format ?? 'tar.gz';
  if (typeof format !== 'string' || !(ARCHIVE_FORMATS as readonly string[]).includes(format)) {
    throw new ValidationFailed('format', `format must be one of ${ARCHIVE_FORMATS.join(', ')} (a gzip OCI layer tar)`);
  }
  const list = (key: string): string[] => {
    const v = body[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.startsWith('/'))) throw new ValidationFailed(key, `${key} must be a list of absolute paths`);
    return v.map((x: string) => {
      if (x.split('/').includes('..')) throw new ValidationFailed(key, `${key} entry ${JSON.stringify(x)} must not contain ".."`);
      return x.split('/').filter((c) => c && c !== '.').join('/');
    });
  };
  return { version: version as string | null, include: list('vm_paths'), exclude: list('exclude_vm_paths') };
}

export interface Snapshot {
  id: string;
  workspace_id: string;
  status: 'creating' | 'ready' | 'failed';
  driver: string;
  format: string | null;
  kinds: string[];
  /** Whether running processes were captured (microVM memory), not only files. */
  memory: boolean;
  size: number;
  after: SnapshotAfter;
  image: string;
  image_digest: string | null;
  label: string | null;
  error: string | null;
  /** Pass as `image` to POST /workspace to start a new workspace from it. */
  image_ref: string;
  created_at: string;
  completed_at: string | null;
}

const AFTER: readonly SnapshotAfter[] = ['resume', 'paused', 'stop'];
const SNAPSHOTTABLE = new Set(['running', 'paused', 'stopped', 'sleeping']);

export function snapshotView(r: SnapshotTable): Snapshot {
  const kinds = r.kinds ? (JSON.parse(r.kinds) as string[]) : [];
  return {
    id: r.id, workspace_id: r.workspace_id, status: r.state as Snapshot['status'], driver: r.driver, format: r.format, kinds,
    memory: kinds.includes('memory'), size: r.size_bytes, after: r.after as SnapshotAfter, image: r.image, image_digest: r.image_digest,
    label: r.label, error: r.error, image_ref: `snapshot:${r.id}`, created_at: r.created_at, completed_at: r.completed_at,
  };
}

/** Parse the create body: `{ after?, label? }` (the SDK always sends an object, `{}` by default). */
export function parseSnapshotRequest(body: Record<string, unknown>): { after: SnapshotAfter; label: string | null } {
  const after = body.after ?? 'resume';
  if (typeof after !== 'string' || !AFTER.includes(after as SnapshotAfter)) throw new ValidationFailed('after', `after must be one of ${AFTER.join(', ')}`);
  const label = body.label ?? body.name ?? null;
  if (label !== null && (typeof label !== 'string' || label.length > 200)) throw new ValidationFailed('label', 'label must be a string of at most 200 characters');
  return { after: after as SnapshotAfter, label: label as string | null };
}

const now = () => new Date().toISOString();

export class SnapshotService {
  private readonly locks = new KeyedMutex();
  private readonly db: Kysely<SnapshotDb>;

  constructor(
    db: Db,
    private readonly host: HostDriver,
    private readonly workspaces: WorkspaceService,
    private readonly log: Logger,
  ) {
    this.db = db as unknown as Kysely<SnapshotDb>;
  }

  /** What a snapshot of this workspace captures on this host (lifecycle's snapshot_supported). */
  support(ws: Pick<Workspace, 'driver'>): SnapshotSupport {
    return this.host.snapshotSupport(ws.driver);
  }

  /** Snapshots the principal may see: its own, narrowed to its namespace or workspace scope. */
  private scoped(p: Principal) {
    return scopedSnapshots(this.db, p);
  }

  async create(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Snapshot> {
    const req = parseSnapshotRequest(body);
    const found = await this.workspaces.find(p, idOrSlug);
    const row = await this.locks.run(found.id, async () => {
      const ws = (await this.workspaces.byId(found.id))!;
      if (!SNAPSHOTTABLE.has(ws.state)) throw new StateConflict(`workspace is ${ws.state}; a snapshot needs a running, paused or stopped workspace`, 'wait until it is running');
      const support = this.support(ws);
      if (!support.filesystem) throw new StateConflict(`snapshots are not available for this workspace: ${support.reason}`);
      const id = randomId('snap_', 20);
      const at = now();
      const row: SnapshotTable = {
        id, workspace_id: ws.id, owner: ws.owner, namespace: ws.namespace, state: 'creating', driver: ws.driver, format: null, kinds: null,
        size_bytes: 0, after: req.after, image: ws.image, image_digest: null, label: req.label, error: null, created_at: at, completed_at: null,
      };
      await this.db.insertInto('snapshots').values(row).execute();
      try {
        const snap = await this.host.snapshot(sandboxRef(ws), id, { after: req.after });
        const done: Partial<SnapshotTable> = {
          state: 'ready', format: snap.format, kinds: JSON.stringify(snap.kinds), size_bytes: snap.bytes, image_digest: snap.image_digest, completed_at: now(),
        };
        await this.db.updateTable('snapshots').set(done).where('id', '=', id).execute();
        this.log.info({ workspace: ws.id, snapshot: id, bytes: snap.bytes, kinds: snap.kinds, seconds: snap.seconds }, 'snapshot taken');
        return { ...row, ...done, sandboxState: snap.state };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        await this.db.updateTable('snapshots').set({ state: 'failed', error: message, completed_at: now() }).where('id', '=', id).execute();
        this.log.error({ workspace: ws.id, snapshot: id, err: message }, 'snapshot failed');
        throw err;
      }
    });
    // `after`, through the workspace service so the lifecycle is recorded as usual: 'stop' is the
    // caller's stop (a remove_on_exit workspace is then deleted; its snapshot stays).
    if (req.after === 'stop' && row.sandboxState !== 'stopped') await this.workspaces.stop(p, found.id, 'request');
    else if (req.after === 'paused' && row.sandboxState === 'running') await this.workspaces.pause(p, found.id);
    const { sandboxState: _, ...stored } = row;
    return snapshotView(stored as SnapshotTable);
  }

  async list(p: Principal, idOrSlug: string): Promise<Snapshot[]> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const rows = await this.scoped(p).where('workspace_id', '=', ws.id).orderBy('created_at', 'desc').orderBy('id').execute();
    return rows.map(snapshotView);
  }

  /** Every snapshot of the caller, including those of deleted workspaces. */
  async listAll(p: Principal): Promise<Snapshot[]> {
    return (await this.scoped(p).orderBy('created_at', 'desc').orderBy('id').execute()).map(snapshotView);
  }

  async get(p: Principal, snapshotId: string, workspace?: string): Promise<Snapshot> {
    return snapshotView(await this.row(p, snapshotId, workspace));
  }

  private async row(p: Principal, snapshotId: string, workspace?: string): Promise<SnapshotTable> {
    let q = this.scoped(p).where('id', '=', snapshotId);
    if (workspace !== undefined) {
      const ws = await this.workspaces.find(p, workspace);
      q = q.where('workspace_id', '=', ws.id);
    }
    const row = await q.executeTakeFirst();
    if (!row) throw new NotFound('snapshot', snapshotId);
    return row;
  }

  /** Restore the latest ready snapshot (or `snapshot_id`) into the same workspace. */
  async restore(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<{ snapshot: Snapshot; workspace: Workspace }> {
    const found = await this.workspaces.find(p, idOrSlug);
    const wanted = body.snapshot_id ?? body.snapshotId;
    if (wanted !== undefined && (typeof wanted !== 'string' || wanted === '')) throw new ValidationFailed('snapshot_id', 'snapshot_id must be a snapshot id');
    return this.locks.run(found.id, async () => {
      const ws = (await this.workspaces.byId(found.id))!;
      let q = this.scoped(p).where('workspace_id', '=', ws.id).where('state', '=', 'ready');
      if (wanted !== undefined) q = q.where('id', '=', wanted as string);
      const row = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
      if (!row) {
        if (wanted !== undefined) throw new NotFound('snapshot', wanted as string);
        throw new StateConflict(`workspace ${ws.id} has no snapshot to restore`, 'take one first: POST /workspace/:id/snapshot (client.workspaces.snapshots.create)');
      }
      if (!SNAPSHOTTABLE.has(ws.state)) throw new StateConflict(`workspace is ${ws.state}; restore needs a running, paused or stopped workspace`);
      const ref = sandboxRef(ws);
      const before = await this.host.state(ref);
      const up = before === 'running' || before === 'paused';
      const t0 = Date.now();
      if (up) await this.host.stop(ref);
      await this.host.restoreSnapshot(ref, row.id);
      if (up) {
        // A restore restarts the sandbox: bump the generation as every restart does, so pooled
        // gateway connections and late reapers of the old sandbox never reach the new one.
        await this.db.updateTable('workspaces').set({ generation: ws.generation + 1, updated_at: now() })
          .where('id', '=', ws.id).where('generation', '=', ws.generation).execute();
        const fresh = sandboxRef((await this.workspaces.byId(ws.id))!);
        await this.host.start(fresh);
        if (before === 'paused') await this.host.pause(fresh);
      }
      this.log.info({ workspace: ws.id, snapshot: row.id, ms: Date.now() - t0, was: before }, 'snapshot restored');
      return { snapshot: snapshotView(row), workspace: (await this.workspaces.byId(ws.id))! };
    });
  }

  // ---------------------------------------------------------------- archives (§12)

  private scopedArchives(p: Principal) {
    let q = this.db.selectFrom('archives').selectAll().where('owner', '=', p.clientId);
    if (p.namespace !== null) q = q.where('namespace', '=', p.namespace);
    if (p.workspaceId !== null) q = q.where('workspace_id', '=', p.workspaceId);
    return q;
  }

  /**
   * Export the workspace's files as a versioned archive: a consistent
   * snapshot (frozen while copied), packed into a file, the snapshot dropped.
   */
  async createArchive(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Archive> {
    const req = parseArchiveRequest(body);
    const found = await this.workspaces.find(p, idOrSlug);
    return this.locks.run(found.id, async () => {
      const ws = (await this.workspaces.byId(found.id))!;
      if (!SNAPSHOTTABLE.has(ws.state)) throw new StateConflict(`workspace is ${ws.state}; an archive needs a running, paused or stopped workspace`);
      const existing = await this.db.selectFrom('archives').select('version').where('workspace_id', '=', ws.id).execute();
      let version = req.version;
      if (version === null) {
        const n = existing.map((e) => /^v(\d+)$/.exec(e.version)?.[1]).filter(Boolean).map(Number);
        version = `v${Math.max(0, ...n) + 1}`;
      } else if (existing.some((e) => e.version === version)) {
        throw new AlreadyExists('archive version', version);
      }
      const row: ArchiveTable = {
        workspace_id: ws.id, version, owner: ws.owner, namespace: ws.namespace, state: 'creating', format: 'tar.gz', size_bytes: 0, sha256: null,
        paths: JSON.stringify(req.include.map((x) => `/${x}`)), exclude_paths: JSON.stringify(req.exclude.map((x) => `/${x}`)), file: null,
        image: ws.image, error: null, created_at: now(), completed_at: null,
      };
      await this.db.insertInto('archives').values(row).execute();
      const tmp = randomId('snap_', 20);
      try {
        await this.host.snapshot(sandboxRef(ws), tmp, { after: 'resume' });
        const out = await this.host.exportSnapshot(tmp, { workspaceId: ws.id, version }, { include: req.include, exclude: req.exclude });
        const done: Partial<ArchiveTable> = { state: 'ready', size_bytes: out.bytes, sha256: out.sha256, file: out.file, completed_at: now() };
        await this.db.updateTable('archives').set(done).where('workspace_id', '=', ws.id).where('version', '=', version).execute();
        this.log.info({ workspace: ws.id, version, bytes: out.bytes, entries: out.entries }, 'archive written');
        return archiveView({ ...row, ...done });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        await this.db.updateTable('archives').set({ state: 'failed', error: message, completed_at: now() }).where('workspace_id', '=', ws.id).where('version', '=', version).execute();
        throw err;
      } finally {
        await this.host.deleteSnapshot(tmp).catch((e) => this.log.warn({ snapshot: tmp, err: e }, 'could not remove the archive\'s snapshot'));
      }
    });
  }

  async listArchives(p: Principal, idOrSlug: string): Promise<Archive[]> {
    const ws = await this.workspaces.find(p, idOrSlug);
    return (await this.scopedArchives(p).where('workspace_id', '=', ws.id).orderBy('created_at', 'desc').orderBy('version').execute()).map(archiveView);
  }

  async getArchive(p: Principal, idOrSlug: string, version: string): Promise<Archive> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const row = await this.scopedArchives(p).where('workspace_id', '=', ws.id).where('version', '=', version).executeTakeFirst();
    if (!row) throw new NotFound('archive', version);
    return archiveView(row);
  }

  /** Forget archives (one version, or all); their files are removed only with `deleteFiles`, as the contract says. */
  async deleteArchives(p: Principal, idOrSlug: string, version: string | null, deleteFiles: boolean): Promise<string[]> {
    const ws = await this.workspaces.find(p, idOrSlug);
    return this.locks.run(ws.id, async () => {
      let q = this.scopedArchives(p).where('workspace_id', '=', ws.id);
      if (version !== null) q = q.where('version', '=', version);
      const rows = await q.execute();
      if (version !== null && rows.length === 0) throw new NotFound('archive', version);
      for (const r of rows) {
        if (deleteFiles && r.file) await this.host.deleteArchiveFile(r.file);
        await this.db.deleteFrom('archives').where('workspace_id', '=', ws.id).where('version', '=', r.version).execute();
      }
      return rows.map((r) => r.version);
    });
  }

  /** Delete a snapshot; refused while a workspace runs on it (`image: snapshot:<id>`). */
  async delete(p: Principal, snapshotId: string, workspace?: string): Promise<void> {
    const row = await this.row(p, snapshotId, workspace);
    await this.locks.run(row.workspace_id, async () => {
      const users = await this.db.selectFrom('workspaces').select('id').where('image', '=', `snapshot:${row.id}`).where('state', '!=', 'deleted').execute();
      if (users.length) {
        throw new StateConflict(`snapshot ${row.id} is the base of workspace${users.length > 1 ? 's' : ''} ${users.map((u) => u.id).join(', ')}`, 'delete those workspaces first');
      }
      const children = await this.db.selectFrom('snapshots').select('id').where('image', '=', `snapshot:${row.id}`).execute();
      if (children.length) {
        throw new StateConflict(`snapshot ${row.id} is the base of snapshot${children.length > 1 ? 's' : ''} ${children.map((c) => c.id).join(', ')}`, 'delete those snapshots first');
      }
      await this.host.deleteSnapshot(row.id);
      await this.db.deleteFrom('snapshots').where('id', '=', row.id).execute();
    });
  }
}
