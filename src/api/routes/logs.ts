/**
 * The `logs` sub-resource (spec §18): boot and command logs of a workspace,
 * its log files, and their SSE streams. Served by the workspace agent's
 * `/_hearth/logs…` (src/agent/logs): `boot` is the agent's own console,
 * `cmd` the output of the workload running `config.cmd`; any workload id or
 * name is also a valid `source`.
 */
import { LOGS_PREFIX } from '../../core/agent-protocol.ts';
import type { FastifyRequest } from 'fastify';
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { param, type Json } from '../parse.ts';
import { relaySse } from '../sse.ts';
import type { Principal } from '../../auth/principal.ts';
import type { Workspace } from '../../control/workspaces/row.ts';
import { requireRunning } from '../../control/agent-client.ts';
import { READS_SECRETS } from '../grant-rules.ts';

function pick(q: unknown, keys: string[]): Record<string, string | undefined> {
  const src = (q ?? {}) as Json;
  const out: Record<string, string | undefined> = {};
  for (const k of keys) if (typeof src[k] === 'string' || typeof src[k] === 'number') out[k] = String(src[k]);
  return out;
}

export function logRoutes(r: RouteTable, ctx: ApiContext): void {
  const agent = ctx.agent;
  const running = async (req: FastifyRequest, p: Principal): Promise<Workspace> => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    requireRunning(ws);
    return ws;
  };

  r.add('GET', '/workspace/:id/logs', 'workspace:read', READS_SECRETS, async (req, _reply, p) => {
    const ws = await running(req, p);
    return { ...(await agent.call(ws, 'GET', LOGS_PREFIX, undefined, { query: pick(req.query, ['source', 'tail_lines', 'tail', 'since']) })), success: true };
  });

  r.add('DELETE', '/workspace/:id/logs', 'workspace:write', async (req, _reply, p) => {
    const ws = await running(req, p);
    return { ...(await agent.call(ws, 'DELETE', LOGS_PREFIX)), success: true };
  });

  r.add('GET', '/workspace/:id/logs/list', 'workspace:read', READS_SECRETS, async (req, _reply, p) => {
    const ws = await running(req, p);
    return { ...(await agent.call(ws, 'GET', `${LOGS_PREFIX}/files`)), success: true };
  });

  r.add('GET', '/workspace/:id/logs/file/:name', 'workspace:read', READS_SECRETS, async (req, _reply, p) => {
    const ws = await running(req, p);
    return { ...(await agent.call(ws, 'GET', `${LOGS_PREFIX}/files/${encodeURIComponent(param(req.params, 'name'))}`)), success: true };
  });

  for (const source of ['boot', 'cmd'] as const) {
    r.add('GET', `/workspace/:id/logs/stream/${source}`, 'workspace:read', READS_SECRETS, async (req, reply, p) => {
      const ws = await running(req, p);
      const upstream = await agent.stream(ws, `${LOGS_PREFIX}/stream/${source}`, { query: pick(req.query, ['tail_lines', 'tail', 'since']) });
      await relaySse(reply, upstream);
      return reply;
    });
  }
}
