/**
 * The edge's access log: HAProxy formats one JSON line per request (and per
 * closed WebSocket; the format is in src/edge/haproxy-config.ts) and sends
 * it as a datagram to hearthd on loopback; hearthd appends the lines to
 * `<data dir>/logs/edge-access.log`. Why not let HAProxy write the file: it
 * sets O_NONBLOCK on its stdout with F_SETFL, which drops O_APPEND, so a
 * restarted HAProxy overwrites the file from its start and a truncating cap
 * leaves holes; and Node has no Unix datagram sockets, hence UDP on
 * 127.0.0.1 (a port chosen at HAProxy's first start, kept across restarts).
 * While hearthd is down the lines of that time are lost, never requests.
 *
 * Buffered; a full disk loses log lines, never requests. Size-capped: past
 * `capBytes` (64 MiB) the file becomes edge-access.log.1 (replacing the
 * previous one) and a new one starts, so at most about 2 × cap stays.
 */
import { Writable } from 'node:stream';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';

export const ACCESS_LOG_CAP_BYTES = 64 * 1024 * 1024;

export function accessLogFile(dataDir: string): string {
  return path.join(dataDir, 'logs', 'edge-access.log');
}

export interface AccessLog {
  /** One line (without its newline). */
  write(line: string): void;
  close(): Promise<void>;
}

export function fileAccessLog(dataDir: string, capBytes = ACCESS_LOG_CAP_BYTES): AccessLog {
  const file = accessLogFile(dataDir);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
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
    write(line) {
      if (batch.length === 0) setImmediate(flush);
      batch.push(line.endsWith('\n') ? line : `${line}\n`);
    },
    close: () => new Promise<void>((r) => { flush(); stream.end(() => r()); }),
  };
}

/** Receive HAProxy's log datagrams on 127.0.0.1:`port` (0 = pick one) into `log`. */
export async function receiveAccessLog(log: AccessLog, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  sock.on('message', (msg) => log.write(msg.toString('utf8').trimEnd()));
  sock.on('error', () => { /* logging must never take the edge down */ });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, '127.0.0.1', () => { sock.off('error', reject); resolve(); });
  });
  return {
    port: sock.address().port,
    close: async () => {
      await new Promise<void>((r) => sock.close(() => r()));
      await log.close();
    },
  };
}
