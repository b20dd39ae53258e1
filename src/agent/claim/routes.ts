/**
 * POST /_hearth/claim: a pooled agent (started by a warm pool before any
 * workspace existed, HEARTH_AGENT_POOLED=1) takes the secret of the
 * workspace that claimed it. The request is authenticated like any other,
 * with the pool's secret; from the answer on only the new secret is
 * accepted and the pool's is forgotten. A claim happens once: an agent
 * that is not pooled, or already claimed, refuses (a tenant holding the
 * workspace secret cannot rotate it behind hearthd's back).
 */
import { AgentError } from '../../core/agent-protocol/errors.ts';
import { CLAIM_ROUTE } from '../../core/agent-protocol.ts';
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
    const body = await readJson(req, 4096);
    const secret = body.secret;
    if (typeof secret !== 'string' || secret.length < 32 || secret.length > 256 || secret === auth.secret) {
      throw new AgentError('bad_request', 'secret must be a new string of 32 to 256 characters');
    }
    auth.secret = secret;
    auth.claimable = false;
    log('claimed', {});
    return { success: true };
  });
}
