/**
 * Guest metrics (spec §14) inside the agent: `/_hearth/metrics` is one
 * StatsEvent, `/_hearth/metrics/stream` one per interval over SSE. hearthd
 * adds the host's view (cgroup counters of the sandbox) before answering.
 */
import { METRICS_PREFIX } from '../../core/agent-protocol.ts';
import type { Handler } from '../http/context.ts';
import type { Router } from '../router.ts';
import { openDataSse } from '../../core/agent-protocol/sse.ts';
import { everyInterval, intervalParam } from '../logs/sse.ts';
import type { GuestMetrics, RawSample } from './guest.ts';

export function registerMetricsRoutes(router: Router<Handler>, guest: GuestMetrics): void {
  router.add('GET', METRICS_PREFIX, async () => ({ success: true, ...(await guest.snapshot()), sources: await guest.describe() }));

  router.add('GET', `${METRICS_PREFIX}/stream`, async (ctx) => {
    const interval = intervalParam(ctx.query);
    const sse = openDataSse(ctx.res);
    let prev: RawSample = await guest.sample();
    // The first event comes quickly (rates over a short window), then one per interval.
    await everyInterval(sse, interval, async () => {
      const cur = await guest.sample();
      sse.send(guest.event(prev, cur));
      prev = cur;
    }, Math.min(interval, 250));
    return undefined;
  });
}
