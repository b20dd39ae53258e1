/**
 * The edge's access log: one JSON line per request (and per closed
 * WebSocket), appended to `<data dir>/logs/edge-access.log`. Buffered by the
 * file stream; a full disk loses log lines, never requests.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface AccessEntry {
  status: number;
  method: string;
  host: string;
  path: string;
  remote: string;
  ms: number;
  bytes: number;
  secure: boolean;
  workspace?: string;
  port?: number;
  upgrade?: boolean;
  aborted?: boolean;
  error?: string;
}

export interface AccessLog {
  write(e: AccessEntry): void;
  close(): Promise<void>;
}

export function fileAccessLog(dataDir: string): AccessLog {
  const dir = path.join(dataDir, 'logs');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stream = fs.createWriteStream(path.join(dir, 'edge-access.log'), { flags: 'a', mode: 0o600 });
  stream.on('error', () => { /* logging must never take the edge down */ });
  // Lines are batched per event-loop turn: one write syscall for many requests under load.
  let batch: string[] = [];
  const flush = () => {
    if (batch.length) stream.write(batch.join(''));
    batch = [];
  };
  return {
    write(e) {
      if (batch.length === 0) setImmediate(flush);
      batch.push(`${JSON.stringify({ time: new Date().toISOString(), ...e, ms: Math.round(e.ms * 100) / 100 })}\n`);
    },
    close: () => new Promise<void>((r) => { flush(); stream.end(() => r()); }),
  };
}

export const nullAccessLog: AccessLog = { write() {}, close: async () => {} };
