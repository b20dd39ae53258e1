/** Writing responses: JSON bodies, errors, and the two streaming formats (SSE framed by core/agent-protocol/sse.ts). */
import type { ServerResponse } from 'node:http';
import { AgentError, toAgentError } from '../../core/agent-protocol/errors.ts';
import { eventFrame, openSseFrames } from '../../core/agent-protocol/sse.ts';

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

/**
 * Server-sent events in the shape the SDK's exec parser reads (spec §1.5):
 * `event: <name>\ndata: <json>\n\n`, LF only, one JSON object per data line.
 */
export function openSse(res: ServerResponse): SseStream {
  const sse = openSseFrames(res, { maxBacklog: MAX_SSE_BACKLOG });
  return {
    event: (name, data) => sse.frame(eventFrame(name, data)),
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
