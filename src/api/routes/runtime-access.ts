/**
 * Runtime API access (§17): data-plane tokens. A token names exactly one
 * workspace and its token generation; rotate and disable bump the generation
 * so every older token stops working at once, whatever its expiry.
 */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { param } from '../parse.ts';
import { RUNTIME_TOKEN_TTL_S } from '../../auth/jwt.ts';
import { Forbidden } from '../../core/errors.ts';
import type { Workspace } from '../../control/workspaces/row.ts';
import type { Principal } from '../../auth/principal.ts';

export function runtimeAccessRoutes(r: RouteTable, ctx: ApiContext): void {
  const base = '/workspace/:id/runtime-api-access';
  // The token records who minted it: revoking that key or scoped token ends it too.
  const mint = async (ws: Workspace, p: Principal) => {
    const { token, expiresAt } = await ctx.signer.sign({ kind: 'runtime', ws: ws.id, gen: ws.runtimeTokenGen, issuer: { key: p.clientId, token: p.tokenId ?? null } }, RUNTIME_TOKEN_TTL_S);
    return { token, expires_at: expiresAt.toISOString(), expiresAt: expiresAt.toISOString(), base_url: ctx.runtimeUrl() };
  };

  r.add('GET', base, 'runtime', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    return { success: true, enabled: ws.runtimeEnabled, running: ws.state === 'running', base_url: ctx.runtimeUrl() };
  });

  r.add('POST', `${base}/enable`, 'runtime', async (req, _reply, p) => {
    let ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    if (!ws.runtimeEnabled) ws = await ctx.workspaces.setRuntimeEnabled(ws, true);
    return { success: true, enabled: true, ...(await mint(ws, p)) };
  });

  r.add('POST', `${base}/disable`, 'runtime', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    await ctx.workspaces.setRuntimeEnabled(ws, false);
    return { success: true, enabled: false };
  });

  r.add('GET', `${base}/token`, 'runtime', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    if (!ws.runtimeEnabled) throw new Forbidden('runtime API access is disabled for this workspace: enable it first (apiAccess.enable)', 'runtime_disabled');
    return { success: true, enabled: true, ...(await mint(ws, p)) };
  });

  r.add('POST', `${base}/token`, 'runtime', async (req, _reply, p) => {
    const ws = await ctx.workspaces.rotateRuntimeToken(await ctx.workspaces.find(p, param(req.params, 'id')));
    return { success: true, enabled: true, rotated: true, ...(await mint(ws, p)) };
  });

  r.add('GET', `${base}/token/raw`, 'runtime', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    if (!ws.runtimeEnabled) throw new Forbidden('runtime API access is disabled for this workspace: enable it first (apiAccess.enable)', 'runtime_disabled');
    const ep = ctx.workspaces.endpoint(ws);
    return { success: true, token: ws.agentSecret, ip: ep?.ip ?? null, port: ep?.port ?? null };
  });
}
