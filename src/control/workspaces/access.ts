/**
 * Runtime API access (§17): the switch, the token generation every
 * data-plane token names, and the agent secret `token/raw` hands out.
 * Rotating the token or disabling access ends every earlier token at once:
 * the generation moves (gateway tokens) and the agent takes a new secret
 * (raw tokens), under the workspace's lock so no start races the change.
 */
import { sql } from 'kysely';
import { randomToken } from '../../auth/secrets.ts';
import type { WorkspaceTable } from '../../store/db.ts';
import type { WorkspaceDeps } from './deps.ts';
import { current, now, sandboxRef, type Workspace } from './row.ts';

export async function setRuntimeEnabled(d: WorkspaceDeps, ws: Workspace, enabled: boolean): Promise<Workspace> {
  return d.locks.run(ws.id, async () => {
    const set: Partial<WorkspaceTable> = { runtime_enabled: enabled ? 1 : 0, updated_at: now() };
    // Disabling revokes every outstanding token at once, raw ones included.
    if (!enabled) {
      set.runtime_token_gen = sql<number>`runtime_token_gen + 1` as unknown as number;
      const secret = await rotateAgentSecret(d, await current(d, ws.id));
      if (secret) set.agent_secret = secret;
    }
    await d.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
    return current(d, ws.id);
  });
}

export async function rotateRuntimeToken(d: WorkspaceDeps, ws: Workspace): Promise<Workspace> {
  return d.locks.run(ws.id, async () => {
    const secret = await rotateAgentSecret(d, await current(d, ws.id));
    await d.db.updateTable('workspaces')
      .set({ runtime_token_gen: sql<number>`runtime_token_gen + 1` as unknown as number, runtime_enabled: 1, updated_at: now(), ...(secret ? { agent_secret: secret } : {}) })
      .where('id', '=', ws.id).execute();
    return current(d, ws.id);
  });
}

/**
 * A new agent secret, given to the running agent first (so hearthd never
 * stores a secret its agent does not accept); null when the agent keeps its
 * secret (paused, or older than the rotation route).
 */
async function rotateAgentSecret(d: WorkspaceDeps, ws: Workspace): Promise<string | null> {
  // A host that cannot hand an agent a new secret keeps the old one: a stored secret its agent refuses would cut hearthd off.
  if (!d.host.rekeyAgent) return null;
  const next = randomToken(32);
  const outcome = await d.host.rekeyAgent(sandboxRef(ws), next);
  if (outcome === 'too-old' || outcome === 'paused') {
    d.log.warn({ workspace: ws.id, outcome }, 'the agent keeps its secret (paused, or older than secret rotation): its raw token stays valid until the next rotation of a running agent');
    return null;
  }
  return next;
}
