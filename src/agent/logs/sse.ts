/**
 * The pacing of the agent's periodic streams (workload and guest stats).
 * Their framing — the control plane's `data:`-only shape, which hearthd
 * relays to the SDK's `requestSSE` — is the protocol's own
 * (core/agent-protocol/sse.ts, openDataSse).
 */
import type { DataSse } from '../../core/agent-protocol/sse.ts';

/** The stream interval a caller asked for: `interval_ms`, or `interval` in seconds; 1 s by default. */
export function intervalParam(query: URLSearchParams, dflt = 1000): number {
  const ms = query.get('interval_ms');
  const s = query.get('interval');
  const v = ms !== null && ms !== '' ? Number(ms) : s !== null && s !== '' ? Number(s) * 1000 : dflt;
  if (!Number.isFinite(v)) return dflt;
  return Math.min(60_000, Math.max(100, Math.round(v)));
}

/**
 * Call `tick` every `intervalMs` (the first time after `firstMs`) until the
 * stream closes or `tick` returns false; then end the stream.
 */
export async function everyInterval(sse: DataSse, intervalMs: number, tick: () => Promise<boolean | void>, firstMs = intervalMs): Promise<void> {
  let wait = firstMs;
  while (sse.isOpen()) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise<void>((r) => { timer = setTimeout(r, wait); }), sse.closed]);
    wait = intervalMs;
    clearTimeout(timer);
    if (!sse.isOpen()) break;
    if ((await tick()) === false) break;
  }
  sse.end();
}
