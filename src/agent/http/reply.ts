/** Writing responses: JSON bodies, errors, and the two streaming formats. */
import type { ServerResponse } from 'node:http';
import { AgentError, toAgentError } from '../../core/agent-protocol/errors.ts';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    // A streaming handler failed midway: the status is gone, end the stream.
    if (!res.writableEnded) res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const e = err instanceof AgentError ? err : toAgentError(err);
  sendJson(res, e.status, e.toBody());
}

/** Keep-alive interval for long-lived streams (proxies drop idle connections). */
const KEEPALIVE_MS = 15_000;
/**
 * A client this far behind is cut off instead of buffering without bound;
 * an exec task keeps running and can be re-subscribed (replay from its log).
 */
const MAX_SSE_BACKLOG = 32 * 1024 * 1024;

export interface SseStream {
  event(name: string, data: object): void;
  /** Resolves when the client went away or end() was called. */
  readonly closed: Promise<void>;
  end(): void;
  isOpen(): boolean;
}

/** A raw SSE response: whole frames in, keep-alive pings, bounded backlog. openSse below and openDataSse (logs/sse.ts) sit on it. */
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
export function openSseFrames(res: ServerResponse, opts: { maxBacklog: number; headers?: Record<string, string> }): SseFrames {
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
  const timer = setInterval(() => { if (open) res.write(': ping\n\n'); }, KEEPALIVE_MS);
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

/**
 * Server-sent events in the shape the SDK's exec parser reads (spec §1.5):
 * `event: <name>\ndata: <json>\n\n`, LF only, one JSON object per data line.
 */
export function openSse(res: ServerResponse): SseStream {
  const sse = openSseFrames(res, { maxBacklog: MAX_SSE_BACKLOG });
  return {
    event: (name, data) => sse.frame(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`),
    closed: sse.closed,
    end: () => sse.end(),
    isOpen: () => sse.isOpen(),
  };
}

/** NDJSON (spec §1.5): one JSON object per line. */
export function openNdjson(res: ServerResponse): { write(obj: object): boolean; end(): void; isOpen(): boolean; drain(): Promise<void> } {
  res.writeHead(200, {
    'content-type': 'application/x-ndjson; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  return {
    write: (obj) => res.write(`${JSON.stringify(obj)}\n`),
    end: () => { if (!res.writableEnded) res.end(); },
    isOpen: () => !res.destroyed && !res.writableEnded,
    drain: () => new Promise<void>((resolve) => {
      if (res.destroyed) return resolve();
      const done = (): void => { res.off('drain', done); res.off('close', done); resolve(); };
      res.once('drain', done);
      res.once('close', done);
    }),
  };
}
