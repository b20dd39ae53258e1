/**
 * Whether a verified runtime grant may reach its workspace now, given
 * whether the credential that minted it still stands. Pure: the
 * same judgement admits a request and, re-applied every second by the
 * session sweep, ends live sessions (WebSockets, streams) once the token is
 * revoked or the workspace stops.
 */
import type { Workspace } from '../control/workspaces/row.ts';
import type { RuntimeGrant } from './tokens.ts';

export type Denial =
  | { kind: 'revoked'; message: string }
  | { kind: 'unavailable'; message: string; state: string };

export function judge(ws: Workspace | null, grant: RuntimeGrant, issuerAlive: boolean, now = Date.now()): Denial | null {
  if (grant.expMs <= now) return { kind: 'revoked', message: 'runtime token expired: fetch a new one with apiAccess.getToken' };
  if (!issuerAlive) return { kind: 'revoked', message: 'runtime token revoked: the API key or token that minted it was revoked; mint a new one with a live credential' };
  // A rotated or disabled token fails here at once: its generation is no longer current.
  if (!ws || ws.state === 'deleted' || ws.state === 'deleting' || !ws.runtimeEnabled || ws.runtimeTokenGen !== grant.gen) {
    return { kind: 'revoked', message: 'runtime token revoked (rotated, disabled or workspace deleted): fetch a new one with apiAccess.getToken' };
  }
  if (ws.state !== 'running' || ws.slotIndex === null) {
    return { kind: 'unavailable', message: `workspace ${ws.id} is ${ws.state}`, state: ws.state };
  }
  return null;
}
