/**
 * Workloads (spec §13): managed processes inside a workspace. Each route
 * finds the workspace in the caller's scope, then forwards to the workspace
 * agent's `/_hearth/workloads…` API (src/agent/workloads), which owns the
 * processes. Streams are relayed as control-plane SSE (§1.5).
 */
import { WORKLOADS_PREFIX } from '../../core/agent-protocol.ts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../context.ts';
import type { RouteNeeds, RouteTable } from '../route-table.ts';
import { param, type Json } from '../parse.ts';
import { relaySse } from '../sse.ts';
import type { Principal } from '../../auth/principal.ts';
import type { Workspace } from '../../control/workspaces/row.ts';
import { requireRunning } from '../../control/agent-client.ts';
import { READS_SECRETS, RUNS_CODE } from '../grant-rules.ts';

/** Calls that wait for a process to stop: up to its stop_timeout (≤ 300 s) plus slack. */
const STOP_TIMEOUT_MS = 320_000;

function pick(q: unknown, keys: string[]): Record<string, string | undefined> {
  const src = (q ?? {}) as Json;
  const out: Record<string, string | undefined> = {};
  for (const k of keys) if (typeof src[k] === 'string' || typeof src[k] === 'number') out[k] = String(src[k]);
  return out;
}

/** `get` returns the whole body as a WorkloadInfo (§13): the fields top-level and under `workload`. */
function flat(res: Json): Json {
  const w = (res.workload ?? {}) as Json;
  return { ...w, ...res, success: true, workload: w };
}

export function workloadRoutes(r: RouteTable, ctx: ApiContext): void {
  const agent = ctx.agent;

  const running = async (req: FastifyRequest, p: Principal): Promise<Workspace> => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    requireRunning(ws);
    return ws;
  };
  const one = (req: FastifyRequest): string => `${WORKLOADS_PREFIX}/${encodeURIComponent(param(req.params, 'wid'))}`;

  r.add('POST', '/workspace/:id/workloads', 'workspace:write', RUNS_CODE, async (req, reply, p) => {
    const ws = await running(req, p);
    const res = await agent.call(ws, 'POST', WORKLOADS_PREFIX, req.body ?? {});
    reply.code(201);
    return flat(res);
  });

  /** A workspace that is not running has no live workloads: reads answer empty (the SDK lists, it does not expect an error). */
  const quiet = async (req: FastifyRequest, p: Principal): Promise<Workspace | null> => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    return ws.state === 'running' && ws.slotIndex !== null ? ws : null;
  };

  r.add('GET', '/workspace/:id/workloads', 'workspace:read', async (req, _reply, p) => {
    const ws = await quiet(req, p);
    if (!ws) return { success: true, workloads: [], count: 0, workspace_running: false };
    return { ...(await agent.call(ws, 'GET', WORKLOADS_PREFIX, undefined, { query: pick(req.query, ['states', 'status', 'name', 'limit']) })), success: true };
  });

  r.add('DELETE', '/workspace/:id/workloads', 'workspace:write', async (req, _reply, p) => {
    const ws = await running(req, p);
    return { ...(await agent.call(ws, 'DELETE', WORKLOADS_PREFIX, undefined, { timeoutMs: STOP_TIMEOUT_MS })), success: true };
  });

  const stream = (url: string, agentPath: (req: FastifyRequest) => string, keys: string[], needs: RouteNeeds = {}) =>
    r.add('GET', url, 'workspace:read', needs, async (req: FastifyRequest, reply: FastifyReply, p: Principal) => {
      const ws = await running(req, p);
      const upstream = await agent.stream(ws, agentPath(req), { query: pick(req.query, keys) });
      await relaySse(reply, upstream);
      return reply;
    });

  // Static `stats` beats the `:wid` parameter (§1.6).
  stream('/workspace/:id/workloads/stats/stream', () => `${WORKLOADS_PREFIX}/stats/stream`, ['interval', 'interval_ms']);

  r.add('GET', '/workspace/:id/workloads/:wid', 'workspace:read', async (req, _reply, p) => {
    const ws = await running(req, p);
    return flat(await agent.call(ws, 'GET', one(req)));
  });

  for (const method of ['PUT', 'PATCH'] as const) {
    r.add(method, '/workspace/:id/workloads/:wid', 'workspace:write', RUNS_CODE, async (req, _reply, p) => {
      const ws = await running(req, p);
      return flat(await agent.call(ws, method, one(req), req.body ?? {}, { timeoutMs: STOP_TIMEOUT_MS }));
    });
  }

  r.add('DELETE', '/workspace/:id/workloads/:wid', 'workspace:write', async (req, _reply, p) => {
    const ws = await running(req, p);
    return { ...(await agent.call(ws, 'DELETE', one(req), undefined, { timeoutMs: STOP_TIMEOUT_MS })), success: true };
  });

  for (const verb of ['start', 'stop', 'restart'] as const) {
    r.add('POST', `/workspace/:id/workloads/:wid/${verb}`, 'workspace:write', verb === 'stop' ? {} : RUNS_CODE, async (req, _reply, p) => {
      const ws = await running(req, p);
      return flat(await agent.call(ws, 'POST', `${one(req)}/${verb}`, undefined, { timeoutMs: STOP_TIMEOUT_MS }));
    });
  }

  r.add('GET', '/workspace/:id/workloads/:wid/status', 'workspace:read', async (req, _reply, p) => {
    const ws = await running(req, p);
    const w = ((await agent.call(ws, 'GET', one(req))).workload ?? {}) as Json;
    return {
      success: true, id: w.id, name: w.name, status: w.status, pid: w.pid, exit_code: w.exit_code, signal: w.signal,
      restart_count: w.restart_count, started_at: w.started_at, exited_at: w.exited_at, next_restart_at: w.next_restart_at,
      reason: w.reason, uptime_seconds: w.uptime_seconds,
    };
  });

  r.add('GET', '/workspace/:id/workloads/:wid/logs', 'workspace:read', READS_SECRETS, async (req, _reply, p) => {
    const ws = await quiet(req, p);
    if (!ws) return { success: true, id: param(req.params, 'wid'), logs: [], lines: [], count: 0, workspace_running: false };
    return { ...(await agent.call(ws, 'GET', `${one(req)}/logs`, undefined, { query: pick(req.query, ['tail', 'tail_lines', 'lines', 'since']) })), success: true };
  });

  stream('/workspace/:id/workloads/:wid/logs/stream', (req) => `${one(req)}/logs/stream`, ['tail', 'tail_lines', 'since', 'follow'], READS_SECRETS);

  r.add('GET', '/workspace/:id/workloads/:wid/stats', 'workspace:read', async (req, _reply, p) => {
    const ws = await running(req, p);
    return { ...(await agent.call(ws, 'GET', `${one(req)}/stats`)), success: true };
  });

  stream('/workspace/:id/workloads/:wid/stats/stream', (req) => `${one(req)}/stats/stream`, ['interval', 'interval_ms']);
}
