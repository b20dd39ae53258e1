/**
 * POST /_hearth/claim: a pooled agent (started by a warm pool before any
 * workspace existed, HEARTH_AGENT_POOLED=1) takes the secret of the
 * workspace that claimed it. The request is authenticated like any other,
 * with the pool's secret; from the answer on only the new secret is
 * accepted and the pool's is forgotten. A claim happens once: an agent
 * that is not pooled, or already claimed, refuses.
 *
 * POST /_hearth/rekey: hearthd rotates a running agent's secret (runtime
 * token rotated, access disabled), authenticated with the current one.
 * Whoever holds the secret could call it too, which gives nothing new: the
 * secret is root in the workspace, and root there can end the agent anyway.
 */
import { AgentError } from '../../core/agent-protocol/errors.ts';
import { CLAIM_ROUTE, REKEY_ROUTE } from '../../core/agent-protocol.ts';
import type { Router } from '../router.ts';
import type { Handler } from '../http/context.ts';
import { readJson } from '../http/body.ts';

/** The secret the agent accepts now; a claim replaces it in place. */
export interface AgentAuth {
  secret: string;
  /** True until a claim: only a pooled agent may be claimed, once. */
  claimable: boolean;
}

export function registerClaimRoutes(router: Router<Handler>, auth: AgentAuth, log: (msg: string, fields?: Record<string, unknown>) => void): void {
  router.add('POST', CLAIM_ROUTE, async ({ req }) => {
    if (!auth.claimable) throw new AgentError('conflict', 'this agent is not a pooled one, or was claimed already');
    auth.secret = newSecret(await readJson(req, 4096), auth.secret);
    auth.claimable = false;
    log('claimed', {});
    return { success: true };
  });

  // A rotation (runtime token rotated or access disabled): the current secret, which authenticated
  // this request, stops working when the answer is sent. Connections already open keep the access
  // they were granted; every new request and upgrade needs the new secret.
  router.add('POST', REKEY_ROUTE, async ({ req }) => {
    const secret = newSecret(await readJson(req, 4096), auth.secret);
    auth.secret = secret;
    auth.claimable = false;
    log('secret rotated', {});
    return { success: true };
  });
}

function newSecret(body: Record<string, unknown>, current: string): string {
  const secret = body.secret;
  if (typeof secret !== 'string' || secret.length < 32 || secret.length > 256 || secret === current) {
    throw new AgentError('bad_request', 'secret must be a new string of 32 to 256 characters');
  }
  return secret;
}
