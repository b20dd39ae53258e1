/**
 * The runtime WebSocket `/ws` (spec §22.9): one socket multiplexes every
 * terminal and watcher. Several sockets may be open at once and all of
 * them get every event (replacing the old socket would make two
 * auto-reconnecting clients evict each other forever).
 *
 * Binary frames: `[terminal id][bytes]` both ways. Text frames: JSON with
 * `channel` (absent = terminal). Anything malformed is ignored; a bad frame
 * never closes the socket. Heartbeat: a ws ping every 20 s; a socket that
 * missed the previous pong is terminated (dead peers behind NAT).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import { parseTerminalId } from '../terminals/service.ts';

export const HEARTBEAT_MS = 20_000;
/** A socket this far behind is dropped rather than buffering without bound. */
const MAX_BUFFERED = 16 * 1024 * 1024;
/** How long a socket that failed may take to deliver its close frame before it is cut. */
const ERROR_CLOSE_GRACE_MS = 1000;

export interface WsInputHandler {
  terminalInput(id: number, data: Buffer): void;
  terminalResize(id: number, cols: number, rows: number): void;
}

interface Peer {
  alive: boolean;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class WsHub {
  /** Created on the first upgrade: loading `ws` costs startup time that most agents never need. */
  private wss: Promise<WebSocketServer> | undefined;
  private closed = false;
  private readonly peers = new Map<WebSocket, Peer>();
  private heartbeat: NodeJS.Timeout | undefined;
  private input: WsInputHandler | undefined;

  constructor(private readonly heartbeatMs = HEARTBEAT_MS) {}

  setInputHandler(h: WsInputHandler): void {
    this.input = h;
  }

  get size(): number {
    return this.peers.size;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss ??= import('ws').then((m) => new m.WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024, perMessageDeflate: false }));
    this.wss.then(
      (wss) => {
        if (this.closed || socket.destroyed) {
          socket.destroy();
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws));
      },
      () => socket.destroy(),
    );
  }

  /** Terminal output to every socket: `[id][bytes]`. Empty payloads are never sent. */
  sendTerminalOutput(id: number, data: Buffer): void {
    if (data.length === 0 || this.peers.size === 0) return;
    const frame = Buffer.allocUnsafe(data.length + 1);
    frame[0] = id;
    data.copy(frame, 1);
    this.broadcast(frame, true);
  }

  sendJson(msg: object): void {
    if (this.peers.size === 0) return;
    this.broadcast(JSON.stringify(msg), false);
  }

  close(): void {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    // A close frame (1001 going away) tells clients this is a shutdown, not a network fault.
    for (const ws of this.peers.keys()) {
      try { ws.close(1001, 'agent shutting down'); } catch { /* already closing */ }
      setTimeout(() => ws.terminate(), 500).unref();
    }
    this.peers.clear();
    void this.wss?.then((wss) => wss.close());
  }

  private broadcast(payload: Buffer | string, binary: boolean): void {
    for (const ws of this.peers.keys()) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED) {
        ws.terminate(); // it reconnects and can read the scrollback
        continue;
      }
      ws.send(payload, { binary });
    }
  }

  private attach(ws: WebSocket): void {
    const peer: Peer = { alive: true };
    this.peers.set(ws, peer);
    this.ensureHeartbeat();
    ws.on('pong', () => { peer.alive = true; });
    ws.on('message', (data, isBinary) => {
      try {
        this.onMessage(ws, toBuffer(data), isBinary);
      } catch {
        /* malformed frames are ignored, never fatal */
      }
    });
    // On a protocol error (bad frame, message over maxPayload) ws has already sent the
    // close frame with its RFC code: cutting the socket at once would reset the
    // connection before that frame reaches the client.
    ws.on('error', () => { setTimeout(() => ws.terminate(), ERROR_CLOSE_GRACE_MS).unref(); });
    ws.on('close', () => {
      this.peers.delete(ws);
      if (this.peers.size === 0 && this.heartbeat) {
        clearInterval(this.heartbeat);
        this.heartbeat = undefined;
      }
    });
  }

  private ensureHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      for (const [ws, peer] of this.peers) {
        if (!peer.alive) {
          ws.terminate();
          continue;
        }
        peer.alive = false;
        try { ws.ping(); } catch { /* closing */ }
      }
    }, this.heartbeatMs);
    this.heartbeat.unref();
  }

  private onMessage(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      if (data.length < 2) return;
      this.input?.terminalInput(data[0] as number, data.subarray(1));
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return;
    const m = msg as Record<string, unknown>;
    const channel = m.channel ?? 'terminal';
    if (channel === 'terminal' && m.type === 'resize') {
      const id = parseTerminalId(m.id);
      const cols = Number(m.cols);
      const rows = Number(m.rows);
      if (id !== undefined && Number.isFinite(cols) && Number.isFinite(rows)) this.input?.terminalResize(id, cols, rows);
    } else if (m.type === 'ping') {
      // Application-level ping for clients that cannot see ws pings (browsers).
      ws.send(JSON.stringify({ channel: m.channel ?? 'system', type: 'pong', ts: Date.now() }));
    }
    // Unknown messages are ignored (spec §22.9).
  }
}
