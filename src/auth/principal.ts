/**
 * Who is calling the control plane, and what they may see. Produced by
 * authentication (API key or bearer token), consumed by every route.
 */
import type { Grants } from '../core/grants.ts';

export interface Principal {
  kind: 'key' | 'token';
  /** The API key behind the call (for tokens: the key that minted it). */
  clientId: string;
  admin: boolean;
  /** Bound to one namespace (namespace keys and namespace tokens). */
  namespace: string | null;
  /** Bound to one workspace (workspace tokens). */
  workspaceId: string | null;
  /** What it may do within its scope. */
  grants: Grants;
  /** The token's id (jti), for revocation; null for API keys. */
  tokenId?: string | null;
}

/** Whether `p` may see a workspace with this namespace/id. Refusals look like "not found". */
export function canSeeWorkspace(p: Principal, ws: { id: string; namespace: string | null }): boolean {
  if (p.workspaceId !== null && p.workspaceId !== ws.id) return false;
  if (p.namespace !== null && p.namespace !== ws.namespace) return false;
  return true;
}
