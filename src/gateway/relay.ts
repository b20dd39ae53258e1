/**
 * Relays an upgraded connection (the runtime WebSocket `/ws`, or a proxied
 * WebSocket under `/proxy`) between the client and the agent as raw bytes,
 * with backpressure both ways. The gateway never decodes frames; it only
 * tracks where agent → client frames end (ws-frames.ts), so that it can
 * finish a session itself with a proper close frame: on revocation, when
 * the workspace stops, or when the agent's side vanishes without one.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CLOSE_GOING_AWAY, FrameBoundaries, closeFrame } from './ws-frames.ts';

/** How long a closing client may take to read our close frame before the socket is cut. */
const CLOSE_GRACE_MS = 2000;

export interface Relay {
  /** Finish with a close frame (`code`, `reason`) at the next frame boundary, then cut both sides. */
  close(code: number, reason: string): void;
  /** Resolves once both sides are closed. */
  readonly done: Promise<void>;
}

/**
 * `unreachable` renders the HTTP answer for a client whose upgrade never got
 * any reply from the agent (connection refused, agent gone before its 101).
 */
export function relayUpgrade(client: Duplex, upstream: Socket, requestHead: string, head: Buffer, unreachable: () => string): Relay {
  const frames = new FrameBoundaries();
  let pending: { code: number; reason: string } | null = null;
  let finished = false;
  let answered = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });

  const destroyBoth = (): void => {
    upstream.destroy();
    client.destroy();
  };

  const finish = (code: number, reason: string): void => {
    if (finished) return;
    finished = true;
    upstream.removeListener('data', onUpstreamData);
    upstream.destroy();
    if (!answered && client.writable) {
      client.end(unreachable());
      setTimeout(() => client.destroy(), CLOSE_GRACE_MS).unref();
      return;
    }
    if (!client.writable || (frames.isWebSocket && !frames.atBoundary)) {
      client.destroy(); // mid-frame: the stream is broken whatever we send
      return;
    }
    // A close frame only on a WebSocket that has not closed already; plain HTTP (a refused upgrade) just ends.
    if (frames.isWebSocket && !frames.sawClose) client.end(closeFrame(code, reason));
    else client.end();
    setTimeout(() => client.destroy(), CLOSE_GRACE_MS).unref();
  };

  const onUpstreamData = (chunk: Buffer): void => {
    answered = true;
    if (pending) {
      const n = frames.advance(chunk, true);
      if (n > 0) client.write(chunk.subarray(0, n));
      if (frames.atBoundary || !frames.isWebSocket) finish(pending.code, pending.reason);
      return;
    }
    frames.advance(chunk);
    if (!client.write(chunk)) upstream.pause();
  };

  client.on('drain', () => upstream.resume());
  upstream.on('drain', () => client.resume());
  upstream.on('data', onUpstreamData);
  client.on('data', (chunk: Buffer) => {
    if (finished) return;
    if (!upstream.write(chunk)) client.pause();
  });

  // The agent's side ended: tell the client properly when the stream allows it.
  upstream.on('end', () => finish(CLOSE_GOING_AWAY, 'workspace agent went away'));
  upstream.on('close', () => finish(CLOSE_GOING_AWAY, 'workspace agent went away'));
  upstream.on('error', () => finish(CLOSE_GOING_AWAY, 'workspace agent unreachable'));
  client.on('error', destroyBoth);
  client.on('close', () => {
    finished = true;
    upstream.destroy();
    resolveDone();
  });
  client.on('end', () => upstream.end());

  upstream.write(requestHead);
  if (head.length > 0) upstream.write(head);

  return {
    done,
    close(code, reason) {
      if (finished) return;
      if (!frames.isWebSocket || frames.atBoundary) {
        finish(code, reason);
        return;
      }
      // Mid-frame: let the current frame through, then close (or give up after the grace).
      pending = { code, reason };
      upstream.resume();
      setTimeout(() => { if (!finished) { finished = true; destroyBoth(); } }, CLOSE_GRACE_MS).unref();
    },
  };
}
