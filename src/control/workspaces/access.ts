/** Runtime API access (§17): the switch and the token generation every data-plane token names. */
import { sql } from 'kysely';
import type { WorkspaceTable } from '../../store/db.ts';
import type { WorkspaceDeps } from './deps.ts';
import { current, now, type Workspace } from './row.ts';

export async function setRuntimeEnabled(d: WorkspaceDeps, ws: Workspace, enabled: boolean): Promise<Workspace> {
  const set: Partial<WorkspaceTable> = { runtime_enabled: enabled ? 1 : 0, updated_at: now() };
  // Disabling revokes every outstanding token at once.
  if (!enabled) set.runtime_token_gen = sql<number>`runtime_token_gen + 1` as unknown as number;
  await d.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
  return current(d, ws.id);
}

export async function rotateRuntimeToken(d: WorkspaceDeps, ws: Workspace): Promise<Workspace> {
  await d.db.updateTable('workspaces')
    .set({ runtime_token_gen: sql<number>`runtime_token_gen + 1` as unknown as number, runtime_enabled: 1, updated_at: now() })
    .where('id', '=', ws.id).execute();
  return current(d, ws.id);
}
