/**
 * The edge's access log: one JSON line per request (and per closed
 * WebSocket), appended to `<data dir>/logs/edge-access.log`. Buffered by the
 * file stream; a full disk loses log lines, never requests. Size-capped:
 * past `capBytes` (64 MiB) the file becomes edge-access.log.1 (replacing
 * the previous one) and a new one starts, so at most about 2 × cap stays.
 */
import { Writable } from 'node:stream';
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

export const ACCESS_LOG_CAP_BYTES = 64 * 1024 * 1024;

export function fileAccessLog(dataDir: string, capBytes = ACCESS_LOG_CAP_BYTES): AccessLog {
  const dir = path.join(dataDir, 'logs');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'edge-access.log');
  // The file is opened now, not when the stream gets round to it: a rotation
  // must rename the very file this stream writes, even under a burst.
  const openStream = (): Writable => {
    let st: Writable;
    try {
      st = fs.createWriteStream(file, { fd: fs.openSync(file, 'a', 0o600) });
    } catch {
      // Logging must never take the edge down: a file that cannot be opened loses lines.
      st = new Writable({ write: (_chunk, _enc, done) => done() });
    }
    st.on('error', () => { /* logging must never take the edge down */ });
    return st;
  };
  let stream = openStream();
  let size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  // Lines are batched per event-loop turn: one write syscall for many requests under load.
  let batch: string[] = [];
  const flush = () => {
    if (!batch.length) return;
    const text = batch.join('');
    batch = [];
    stream.write(text);
    size += Buffer.byteLength(text);
    if (size > capBytes) {
      // Rotate: the old stream finishes its writes into the renamed file.
      try {
        fs.renameSync(file, `${file}.1`);
      } catch { /* keep writing where we are */ }
      stream.end();
      stream = openStream();
      size = 0;
    }
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
