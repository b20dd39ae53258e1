/**
 * Snapshots (§12): `POST /workspace/:id/snapshot` and `POST /workspace/:id/restore`
 * as the SDK sends them, plus extensions the SDK lacks: list, get and delete
 * per workspace (`/workspace/:id/snapshots[/:sid]`) and per account
 * (`/snapshots[/:sid]`, for snapshots that outlived their workspace), and
 * `snapshot_id` in the restore body; and the archives of §12 (versioned
 * exports of a workspace's files). New workspaces from a snapshot: create
 * with `image: "snapshot:<id>"`. Parse → authorize → one service call → shape.
 */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { bodyObject, param, type Json } from '../parse.ts';
import { workspaceView } from '../views.ts';
import { snapshotStopRemoves } from '../grant-rules.ts';

export function snapshotRoutes(r: RouteTable, ctx: ApiContext): void {
  const svc = ctx.snapshots;
  r.add('POST', '/workspace/:id/snapshot', 'workspace:write', { state: [snapshotStopRemoves] }, async (req, reply, p) => {
    const snapshot = await svc.create(p, param(req.params, 'id'), bodyObject(req.body));
    reply.code(201);
    return { success: true, id: snapshot.id, snapshot };
  });

  r.add('POST', '/workspace/:id/restore', 'workspace:write', async (req, _reply, p) => {
    const { snapshot, workspace } = await svc.restore(p, param(req.params, 'id'), bodyObject(req.body));
    const endpoint = ctx.workspaces.endpoint(workspace);
    return { success: true, restored: true, snapshot, workspace: workspaceView(workspace, endpoint) };
  });

  r.add('GET', '/workspace/:id/snapshots', 'workspace:read', async (req, _reply, p) => {
    const snapshots = await svc.list(p, param(req.params, 'id'));
    return { success: true, snapshots, total: snapshots.length };
  });

  r.add('GET', '/workspace/:id/snapshots/:sid', 'workspace:read', async (req, _reply, p) => {
    const snapshot = await svc.get(p, param(req.params, 'sid'), param(req.params, 'id'));
    return { success: true, ...snapshot, snapshot };
  });

  r.add('DELETE', '/workspace/:id/snapshots/:sid', 'workspace:write', async (req, _reply, p) => {
    const id = param(req.params, 'sid');
    await svc.delete(p, id, param(req.params, 'id'));
    return { success: true, deleted: true, id };
  });

  // Archives (§12): versioned exports of a workspace's files as files on the host.
  r.add('POST', '/workspace/:id/archives', 'workspace:write', async (req, reply, p) => {
    const archive = await svc.createArchive(p, param(req.params, 'id'), bodyObject(req.body));
    reply.code(201);
    return { success: true, ...archive, archive };
  });

  r.add('GET', '/workspace/:id/archives', 'workspace:read', async (req, _reply, p) => {
    const archives = await svc.listArchives(p, param(req.params, 'id'));
    return { success: true, archives, total: archives.length };
  });

  r.add('GET', '/workspace/:id/archives/:version', 'workspace:read', async (req, _reply, p) => {
    const archive = await svc.getArchive(p, param(req.params, 'id'), param(req.params, 'version'));
    return { success: true, ...archive, archive };
  });

  r.add('DELETE', '/workspace/:id/archives/:version', 'workspace:write', async (req, _reply, p) => {
    const deleted = await svc.deleteArchives(p, param(req.params, 'id'), param(req.params, 'version'), (req.query as Json).delete_file === 'true');
    return { success: true, deleted };
  });

  r.add('DELETE', '/workspace/:id/archives', 'workspace:write', async (req, _reply, p) => {
    const deleted = await svc.deleteArchives(p, param(req.params, 'id'), null, (req.query as Json).delete_files === 'true');
    return { success: true, deleted };
  });

  r.add('GET', '/snapshots', 'workspace:read', async (_req, _reply, p) => {
    const snapshots = await svc.listAll(p);
    return { success: true, snapshots, total: snapshots.length };
  });

  r.add('GET', '/snapshots/:sid', 'workspace:read', async (req, _reply, p) => {
    const snapshot = await svc.get(p, param(req.params, 'sid'));
    return { success: true, ...snapshot, snapshot };
  });

  r.add('DELETE', '/snapshots/:sid', 'workspace:write', async (req, _reply, p) => {
    const id = param(req.params, 'sid');
    await svc.delete(p, id);
    return { success: true, deleted: true, id };
  });
}
