/**
 * The SSE framing of the agent protocol (spec §1.5), for both sides.
 *
 * Two shapes travel: the control plane's streams (logs, workload and
 * workspace stats) are one `data: <json>\n\n` per event with no event names —
 * what the SDK's `requestSSE` parses — and the agent writes them, hearthd
 * relays them (api/sse.ts) with the same writer; the runtime exec streams
 * name their events (`event: <name>\ndata: <json>\n\n`), which the agent
 * writes (http/reply.ts) and the SSH gateway reads. Both: `: ping` comments
 * as keep-alives, LF only, one JSON object per data line.
 *
 * Pure: the writer opens nothing and imports no I/O module; it writes only to
 * the response it is handed (an `SseSink`, which node's ServerResponse is),
 * and the parser is fed text by whoever reads the stream.
 */

/** Keep-alive interval for long-lived streams (proxies drop idle connections). */
const KEEPALIVE_MS = 15_000;
/** A data-stream reader this far behind is cut off rather than buffered without bound. */
const MAX_DATA_BACKLOG = 8 * 1024 * 1024;

export const PING_FRAME = ': ping\n\n';

/** One unnamed event: the control plane's stream shape. */
export function dataFrame(data: object): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** One named event: the exec stream shape. */
export function eventFrame(name: string, data: object): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** What the writer needs of an HTTP response (node's ServerResponse has it all). */
export interface SseSink {
  writeHead(status: number, headers: Record<string, string>): unknown;
  flushHeaders(): void;
  write(chunk: string): unknown;
  end(): unknown;
  destroy(): unknown;
  on(event: 'close', listener: () => void): unknown;
  readonly writableLength: number;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

/** A raw SSE response: whole frames in, keep-alive pings, bounded backlog. openDataSse below and the agent's openSse (http/reply.ts) sit on it. */
export interface SseFrames {
  /** Write one complete frame (ending in a blank line); dropped once closed. */
  frame(text: string): void;
  /** Resolves when the client went away or end() was called. */
  readonly closed: Promise<void>;
  end(): void;
  isOpen(): boolean;
}

/**
 * Open an SSE response: `: ping` comments every 15 s, LF only. A
 * client more than `maxBacklog` bytes behind is cut off rather than
 * buffered without bound.
 */
export function openSseFrames(res: SseSink, opts: { maxBacklog: number; headers?: Record<string, string> }): SseFrames {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    ...opts.headers,
  });
  res.flushHeaders();
  let open = true;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => { resolveClosed = r; });
  const finish = (): void => {
    if (!open) return;
    open = false;
    clearInterval(timer);
    resolveClosed();
  };
  const timer = setInterval(() => { if (open) res.write(PING_FRAME); }, KEEPALIVE_MS);
  timer.unref();
  res.on('close', finish);
  return {
    frame(text) {
      if (!open) return;
      if (res.writableLength > opts.maxBacklog) {
        res.destroy();
        finish();
        return;
      }
      res.write(text);
    },
    closed,
    end() {
      if (open && !res.writableEnded) res.end();
      finish();
    },
    isOpen: () => open && !res.destroyed,
  };
}

/** A writer of the control plane's stream shape (unnamed `data:` events). */
export interface DataSse {
  send(data: object): void;
  end(): void;
  isOpen(): boolean;
  /** Resolves when the client went away or end() was called. */
  readonly closed: Promise<void>;
}

export function openDataSse(res: SseSink, headers?: Record<string, string>): DataSse {
  const sse = openSseFrames(res, { maxBacklog: MAX_DATA_BACKLOG, ...(headers ? { headers } : {}) });
  return {
    send: (data) => sse.frame(dataFrame(data)),
    end: () => sse.end(),
    isOpen: () => sse.isOpen(),
    closed: sse.closed,
  };
}

/** One event read from a stream: its name (`message` when unnamed) and its JSON object. */
export interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/**
 * An incremental reader of either shape: feed it text as it arrives (split
 * anywhere), get the complete events back. Comments are dropped, a data
 * line that is not JSON, or not an object, is skipped, and a CR before the LF is
 * tolerated.
 */
export class SseParser {
  private buffer = '';
  private event = 'message';

  feed(text: string): SseEvent[] {
    this.buffer += text;
    const out: SseEvent[] = [];
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) !== -1) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      if (line === '') { this.event = 'message'; continue; }
      if (line.startsWith('event: ')) { this.event = line.slice(7).trim(); continue; }
      if (!line.startsWith('data: ')) continue;
      const event = this.event;
      this.event = 'message';
      let data: unknown;
      try { data = JSON.parse(line.slice(6)); } catch { continue; }
      if (data && typeof data === 'object') out.push({ event, data: data as Record<string, unknown> });
    }
    return out;
  }
}
