/** Workspace metadata (§16): up to 64 string values, set whole or merged. */
import { ValidationFailed } from '../../core/errors.ts';
import type { Principal } from '../../auth/principal.ts';
import type { WorkspaceDeps } from './deps.ts';
import { find } from './queries.ts';
import { now, type Workspace } from './row.ts';

export async function metadata(d: WorkspaceDeps, ws: Workspace): Promise<Record<string, string>> {
  const row = await d.db.selectFrom('workspaces').select('metadata').where('id', '=', ws.id).executeTakeFirst();
  return row?.metadata ? (JSON.parse(row.metadata) as Record<string, string>) : {};
}

export async function setMetadata(d: WorkspaceDeps, p: Principal, idOrSlug: string, input: unknown, merge: boolean): Promise<Record<string, string>> {
  const found = await find(d, p, idOrSlug);
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ValidationFailed('metadata', 'metadata must be an object of string values');
  return d.locks.run(found.id, async () => {
    const next: Record<string, string> = merge ? await metadata(d, found) : {};
    for (const [k, v] of Object.entries(input as Record<string, unknown>)) {
      if (k.length === 0 || k.length > 128) throw new ValidationFailed('metadata', `metadata key ${JSON.stringify(k.slice(0, 40))} must be 1–128 characters`);
      if (v === null) { delete next[k]; continue; }
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new ValidationFailed(`metadata.${k}`, `metadata.${k} must be a string`);
      const s = String(v);
      if (s.length > 4096) throw new ValidationFailed(`metadata.${k}`, `metadata.${k} is longer than 4096 characters`);
      next[k] = s;
    }
    if (Object.keys(next).length > 64) throw new ValidationFailed('metadata', 'at most 64 metadata keys per workspace');
    await d.db.updateTable('workspaces').set({ metadata: JSON.stringify(next), updated_at: now() }).where('id', '=', found.id).execute();
    return next;
  });
}
