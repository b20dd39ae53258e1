/** Reading workspaces: as a principal sees them, and the aggregates the namespace service needs. */
import type { WorkspaceConfig } from '../../core/workspace-spec.ts';
import { NotFound } from '../../core/errors.ts';
import { canSeeWorkspace, type Principal } from '../../auth/principal.ts';
import type { WorkspaceDeps } from './deps.ts';
import { decodeWorkspace, type Workspace } from './row.ts';

export async function find(d: WorkspaceDeps, p: Principal, idOrSlug: string): Promise<Workspace> {
  const row = await d.db.selectFrom('workspaces').selectAll()
    .where((eb) => eb.or([eb('id', '=', idOrSlug), eb('slug', '=', idOrSlug)]))
    .executeTakeFirst();
  if (!row || row.state === 'deleted') throw new NotFound('workspace', idOrSlug);
  const ws = decodeWorkspace(row);
  if (!canSeeWorkspace(p, ws)) throw new NotFound('workspace', idOrSlug);
  return ws;
}

export interface ListQuery {
  page: number;
  limit: number;
  status?: string;
  mode?: string;
  namespace?: string;
}

export async function list(d: WorkspaceDeps, p: Principal, q: ListQuery): Promise<{ workspaces: Workspace[]; total: number }> {
  let query = d.db.selectFrom('workspaces').where('state', '!=', 'deleted');
  if (p.workspaceId) query = query.where('id', '=', p.workspaceId);
  if (p.namespace) query = query.where('namespace', '=', p.namespace);
  else if (q.namespace) query = query.where('namespace', '=', q.namespace);
  if (q.mode) query = query.where('mode', '=', q.mode);
  if (q.status) {
    const states = q.status === 'creating' ? ['provisioning'] : [q.status];
    query = query.where('state', 'in', states);
  }
  const total = Number((await query.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  const rows = await query.selectAll().orderBy('created_at', 'desc').orderBy('id')
    .limit(q.limit).offset((q.page - 1) * q.limit).execute();
  return { workspaces: rows.map(decodeWorkspace), total };
}

export interface Counts {
  count: number;
  cpus: number;
  memory_mb: number;
  disk_size_mb: number;
  running: number;
  running_cpus: number;
  running_memory_mb: number;
}

export async function counts(d: WorkspaceDeps, p: Principal): Promise<Counts> {
  const { workspaces } = await list(d, p, { page: 1, limit: 100_000 });
  const sum = (ws: Workspace[], f: (c: WorkspaceConfig) => number) => ws.reduce((a, w) => a + f(w.config), 0);
  const running = workspaces.filter((w) => w.state === 'running' || w.state === 'provisioning' || w.state === 'paused');
  return {
    count: workspaces.length,
    cpus: sum(workspaces, (c) => c.cpus), memory_mb: sum(workspaces, (c) => c.memory_mb), disk_size_mb: sum(workspaces, (c) => c.disk_size_mb),
    running: running.length, running_cpus: sum(running, (c) => c.cpus), running_memory_mb: sum(running, (c) => c.memory_mb),
  };
}

export async function idsInNamespace(d: WorkspaceDeps, slug: string, states?: string[]): Promise<string[]> {
  let q = d.db.selectFrom('workspaces').select('id').where('namespace', '=', slug).where('state', 'not in', ['deleting', 'deleted']);
  if (states) q = q.where('state', 'in', states);
  return (await q.execute()).map((r) => r.id);
}

export async function usageNow(d: WorkspaceDeps, slug: string, excludeId?: string): Promise<{ workspaces: number; totalVcpus: number; totalRamMb: number }> {
  const rows = await d.db.selectFrom('workspaces').select(['id', 'config']).where('namespace', '=', slug).where('state', 'not in', ['deleting', 'deleted']).execute();
  const counted = rows.filter((r) => r.id !== excludeId).map((r) => JSON.parse(r.config) as WorkspaceConfig);
  return { workspaces: counted.length, totalVcpus: counted.reduce((a, c) => a + c.cpus, 0), totalRamMb: counted.reduce((a, c) => a + c.memory_mb, 0) };
}
