/**
 * The SSE shape of the control plane's streams (spec §1.5): one
 * `data: <json>\n\n` per event, keep-alives as `: ping` comments, LF only,
 * no event names. hearthd relays these lines to the SDK's `requestSSE`
 * (logs, workload and workspace stats), so the agent speaks that shape
 * already. The runtime exec streams use named events instead (http/reply.ts).
 */
import type { ServerResponse } from 'node:http';
import { openSseFrames } from '../http/reply.ts';

/** A reader this far behind is cut off rather than buffered without bound. */
const MAX_BACKLOG = 8 * 1024 * 1024;

export interface DataSse {
  send(data: object): void;
  end(): void;
  isOpen(): boolean;
  /** Resolves when the client went away or end() was called. */
  readonly closed: Promise<void>;
}

export function openDataSse(res: ServerResponse, headers?: Record<string, string>): DataSse {
  const sse = openSseFrames(res, { maxBacklog: MAX_BACKLOG, ...(headers ? { headers } : {}) });
  return {
    send: (data) => sse.frame(`data: ${JSON.stringify(data)}\n\n`),
    end: () => sse.end(),
    isOpen: () => sse.isOpen(),
    closed: sse.closed,
  };
}

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
