/**
 * The agent's internal workload API, under `/_hearth/workloads` (hearthd
 * calls it with the agent secret and serves the contract's
 * `/workspace/:id/workloads…` routes from it, spec §13). Bodies are the
 * contract's: hearthd passes them through and returns these shapes.
 */
import { WORKLOADS_PREFIX } from '../../core/agent-protocol.ts';
import type { Ctx, Handler } from '../http/context.ts';
import { readJson } from '../http/body.ts';
import { intParam, listParam, q } from '../../core/agent-protocol/params.ts';
import { validation } from '../../core/agent-protocol/errors.ts';
import type { Router } from '../router.ts';
import { parseSince, type LogEntry } from '../logs/line.ts';
import { openDataSse } from '../../core/agent-protocol/sse.ts';
import { everyInterval, intervalParam } from '../logs/sse.ts';
import type { GuestMetrics } from '../metrics/guest.ts';
import { collectWorkloadStats, type StatsState } from './stats.ts';
import type { Supervisor } from './supervisor.ts';
import { TERMINAL, type Workload } from './workload.ts';

const MAX_TAIL = 100_000;

export interface WorkloadRouteDeps {
  supervisor: Supervisor;
  guest: GuestMetrics;
}

/** One WorkloadLogEntry (§13): `data`, `stream`, `timestamp`, plus the workload's id. */
export function logEntryView(e: LogEntry, workloadId: string): Record<string, unknown> {
  return { workload_id: workloadId, timestamp: e.t || null, stream: e.stream, data: e.data };
}

export function sinceParam(query: URLSearchParams): number | null {
  const raw = q(query, 'since');
  if (raw === undefined || raw === '') return null;
  const v = parseSince(raw);
  if (v === null) throw validation('since', 'since must be an ISO date, epoch seconds/milliseconds, or a duration like "5m"');
  return v;
}

export function tailParam(query: URLSearchParams, dflt: number | undefined): number | undefined {
  return intParam(q(query, 'tail') ?? q(query, 'tail_lines') ?? q(query, 'lines'), 'tail', 0, MAX_TAIL) ?? dflt;
}

/** `follow`: `auto` (default: while the workload is running or about to restart), `true`, `false`. */
function followParam(query: URLSearchParams): 'auto' | boolean {
  const v = q(query, 'follow');
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw validation('follow', "follow must be 'auto', 'true' or 'false'");
}

/**
 * Backlog then live lines of a workload, over SSE. The tail is read and the
 * subscription made in the same tick (the store is synchronous), so no line
 * is lost or repeated at the seam. With `follow=auto` the stream ends once
 * the workload stops for good, so `for await` loops terminate.
 */
export function streamWorkloadLogs(
  ctx: Ctx,
  w: Workload,
  opts: { tail?: number; sinceMs: number | null; follow: 'auto' | boolean; view?: (e: LogEntry) => object },
): void {
  const view = opts.view ?? ((e: LogEntry) => logEntryView(e, w.id));
  const sse = openDataSse(ctx.res);
  for (const e of w.logs.tail({ tail: opts.tail, sinceMs: opts.sinceMs })) sse.send(view(e));
  const follows = opts.follow === 'auto' ? !TERMINAL.has(w.status) && !w.removed : opts.follow && !w.removed;
  if (!follows) {
    sse.end();
    return;
  }
  const offLog = w.onLog((e) => sse.send(view(e)));
  const offStatus = w.onStatus((cur) => {
    if (cur.removed || (opts.follow === 'auto' && TERMINAL.has(cur.status))) sse.end();
  });
  void sse.closed.then(() => { offLog(); offStatus(); });
}

export function registerWorkloadRoutes(router: Router<Handler>, deps: WorkloadRouteDeps): void {
  const { supervisor } = deps;
  const P = WORKLOADS_PREFIX;
  const one = (ctx: Ctx): Workload => supervisor.find(ctx.params.wid as string);
  const reply = (w: Workload, extra: Record<string, unknown> = {}) => ({ success: true, workload: w.view(), ...extra });

  router.add('GET', P, (ctx) => {
    const states = listParam(q(ctx.query, 'states') ?? q(ctx.query, 'status'), 'states');
    const list = supervisor.list({
      states,
      name: q(ctx.query, 'name'),
      limit: intParam(q(ctx.query, 'limit'), 'limit', 1, 10_000),
    });
    return { success: true, workloads: list.map((w) => w.view()), total: list.length };
  });

  router.add('POST', P, async (ctx) => reply(supervisor.create(await readJson(ctx.req))));

  router.add('DELETE', P, async () => {
    const ids = await supervisor.removeAll();
    return { success: true, deleted: ids.length, ids };
  });

  const statsOfAll = async (state: StatsState) =>
    collectWorkloadStats(supervisor.list(), state, await deps.guest.memoryLimitBytes());

  router.add('GET', `${P}/stats`, async () => {
    const first = await statsOfAll(new Map());
    await new Promise((r) => setTimeout(r, 250));
    const { events } = await statsOfAll(first.state);
    return { success: true, workloads: events };
  });

  router.add('GET', `${P}/stats/stream`, async (ctx) => {
    const sse = openDataSse(ctx.res);
    let state = (await statsOfAll(new Map())).state;
    await everyInterval(sse, intervalParam(ctx.query), async () => {
      const r = await statsOfAll(state);
      state = r.state;
      for (const ev of r.events) sse.send(ev);
    }, Math.min(250, intervalParam(ctx.query)));
    return undefined;
  });

  router.add('GET', `${P}/:wid`, (ctx) => reply(one(ctx)));

  const update = async (ctx: Ctx) => {
    const { workload, restarted } = await supervisor.update(ctx.params.wid as string, await readJson(ctx.req));
    return reply(workload, { restarted });
  };
  router.add('PUT', `${P}/:wid`, update);
  router.add('PATCH', `${P}/:wid`, update);

  router.add('DELETE', `${P}/:wid`, async (ctx) => {
    const w = await supervisor.remove(ctx.params.wid as string);
    return { success: true, deleted: true, id: w.id, workload: w.view() };
  });

  router.add('POST', `${P}/:wid/start`, (ctx) => reply(supervisor.start(ctx.params.wid as string)));
  router.add('POST', `${P}/:wid/stop`, async (ctx) => reply(await supervisor.stop(ctx.params.wid as string)));
  router.add('POST', `${P}/:wid/restart`, async (ctx) => reply(await supervisor.restart(ctx.params.wid as string)));

  router.add('GET', `${P}/:wid/logs`, (ctx) => {
    const w = one(ctx);
    const entries = w.logs.tail({ tail: tailParam(ctx.query, 1000), sinceMs: sinceParam(ctx.query) });
    return {
      success: true,
      workload_id: w.id,
      logs: entries.map((e) => logEntryView(e, w.id)),
      total: entries.length,
      ...(w.logs.writeError ? { write_error: w.logs.writeError, dropped: w.logs.dropped } : {}),
    };
  });

  router.add('GET', `${P}/:wid/logs/stream`, (ctx) => {
    const w = one(ctx);
    streamWorkloadLogs(ctx, w, { tail: tailParam(ctx.query, 200), sinceMs: sinceParam(ctx.query), follow: followParam(ctx.query) });
    return undefined;
  });

  const statsOfOne = async (w: Workload, state: StatsState) =>
    collectWorkloadStats([w], state, await deps.guest.memoryLimitBytes());

  router.add('GET', `${P}/:wid/stats`, async (ctx) => {
    const w = one(ctx);
    const first = await statsOfOne(w, new Map());
    await new Promise((r) => setTimeout(r, 250));
    const { events } = await statsOfOne(w, first.state);
    return { success: true, ...events[0] };
  });

  router.add('GET', `${P}/:wid/stats/stream`, async (ctx) => {
    const w = one(ctx);
    const sse = openDataSse(ctx.res);
    let state = (await statsOfOne(w, new Map())).state;
    await everyInterval(sse, intervalParam(ctx.query), async () => {
      if (w.removed) return false;
      const r = await statsOfOne(w, state);
      state = r.state;
      for (const ev of r.events) sse.send(ev);
    }, Math.min(250, intervalParam(ctx.query)));
    return undefined;
  });
}
