/**
 * Metrics (spec §14): a workspace's CPU, memory, disk and network as one
 * snapshot (`/stats`) and as an SSE stream (`/stats/stream`), plus VM info
 * and config. The guest's view (the agent reading its cgroup and /proc, see
 * src/agent/metrics/guest.ts) gives the contract's top-level fields; the
 * host's view of the same sandbox (its cgroup counters as hearthd reads
 * them) is added under `host`, with its own CPU rate.
 */
import { METRICS_PREFIX } from '../../core/agent-protocol.ts';
import type { FastifyRequest } from 'fastify';
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { param, type Json } from '../parse.ts';
import { relaySse } from '../sse.ts';
import type { Principal } from '../../auth/principal.ts';
import type { Workspace } from '../../control/workspaces/row.ts';
import { requireRunning } from '../../control/agent-client.ts';
import { publicStatus } from '../../core/lifecycle.ts';

interface HostPoint {
  at: number;
  cpuNs: number;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

/** The host's counters for the sandbox; `cpu_usage` (% of one core) when an earlier point is given. */
async function hostView(ctx: ApiContext, ws: Workspace, prev: HostPoint | null): Promise<{ view: Json | null; point: HostPoint | null }> {
  const s = await ctx.workspaces.stats(ws).catch(() => null);
  if (!s) return { view: null, point: null };
  const at = Date.now();
  const view: Json = {
    driver: ws.driver,
    cpu_time_ns: s.cpuUsageNs,
    memory_bytes: s.memoryBytes,
    memory_limit_bytes: s.memoryLimitBytes,
    pids: s.pids,
  };
  if (prev && at - prev.at >= 100) view.cpu_usage = round1(Math.max(0, (s.cpuUsageNs - prev.cpuNs) / 1e6 / (at - prev.at)) * 100);
  const tx = await ctx.workspaces.egressBytes(ws).catch(() => null);
  if (tx !== null) view.network_tx_bytes = tx;
  return { view, point: { at, cpuNs: s.cpuUsageNs } };
}

export function metricsRoutes(r: RouteTable, ctx: ApiContext): void {
  const agent = ctx.agent;
  const find = (req: FastifyRequest, p: Principal): Promise<Workspace> => ctx.workspaces.find(p, param(req.params, 'id'));

  r.add('GET', '/workspace/:id/stats', 'workspace:read', async (req, _reply, p) => {
    const ws = await find(req, p);
    requireRunning(ws);
    // Host counters before and after the guest snapshot (which takes ≥ 250 ms cold) give the host a rate too.
    const before = await hostView(ctx, ws, null);
    const guest = await agent.call(ws, 'GET', METRICS_PREFIX);
    const after = await hostView(ctx, ws, before.point);
    return { ...guest, success: true, workspace_id: ws.id, status: publicStatus(ws.state), is_running: true, host: after.view };
  });

  r.add('GET', '/workspace/:id/stats/stream', 'workspace:read', async (req, reply, p) => {
    const ws = await find(req, p);
    requireRunning(ws);
    let point = (await hostView(ctx, ws, null)).point;
    const q = (req.query ?? {}) as Json;
    const upstream = await agent.stream(ws, `${METRICS_PREFIX}/stream`, {
      query: { interval: typeof q.interval === 'string' ? q.interval : undefined, interval_ms: typeof q.interval_ms === 'string' ? q.interval_ms : undefined },
    });
    await relaySse(reply, upstream, async (event) => {
      const h = await hostView(ctx, ws, point);
      point = h.point ?? point;
      return { ...event, workspace_id: ws.id, host: h.view };
    });
    return reply;
  });

  r.add('GET', '/workspace/:id/info', 'workspace:read', async (req, _reply, p) => {
    const ws = await find(req, p);
    const ep = ctx.workspaces.endpoint(ws);
    let agentInfo: Json | null = null;
    if (ws.state === 'running') {
      agentInfo = await agent.call(ws, 'GET', '/health', undefined, { timeoutMs: 2000 }).catch(() => null);
    }
    return {
      success: true,
      id: ws.id,
      status: publicStatus(ws.state),
      is_running: ws.state === 'running',
      internal_ip: ep?.ip ?? null,
      cpus: ws.config.cpus,
      memory_mb: ws.config.memory_mb,
      disk_size_mb: ws.config.disk_size_mb,
      uptime: agentInfo && typeof agentInfo.uptime_ms === 'number' ? Math.round(agentInfo.uptime_ms / 1000) : null,
      image: ws.image,
      driver: ws.driver,
      agent_generation: agentInfo?.generation ?? null,
      created_at: ws.createdAt,
      state_changed_at: ws.stateChangedAt,
    };
  });

  r.add('GET', '/workspace/:id/config', 'workspace:read', async (req, _reply, p) => {
    const ws = await find(req, p);
    return { success: true, id: ws.id, image: ws.image, driver: ws.driver, mode: ws.mode, config: ws.config };
  });
}
