/**
 * Helpers for the public-access and SSH tests: a workspace HTTP + WebSocket
 * echo server (plain Node, no packages: it runs inside the node-20 image),
 * a tiny DNS responder on loopback for pebble, pebble itself with its own
 * TLS certificate, and free-port picking.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { waitUntil } from './wait.ts';

/** HTTP on $PORT: `/` says hello, `/headers` echoes request headers, `/stream` streams 5 chunks; WebSocket echo on upgrade. */
export const WORKSPACE_SERVER_JS = String.raw`
const http = require('http'), crypto = require('crypto'), os = require('os');
const port = Number(process.env.PORT || 3000);
const srv = http.createServer((req, res) => {
  if (req.url === '/headers') { res.setHeader('content-type', 'application/json'); return res.end(JSON.stringify(req.headers)); }
  if (req.url === '/stream') { let i = 0; res.setHeader('content-type', 'text/plain'); const t = setInterval(() => { res.write('chunk' + i + '\n'); if (++i === 5) { clearInterval(t); res.end(); } }, 50); return; }
  if (req.url === '/slow') { return setTimeout(() => res.end('slow'), 100000); }
  let body = ''; req.on('data', (c) => body += c); req.on('end', () => res.end('hello from ' + os.hostname() + ' port ' + port + ' ' + req.method + ' ' + body.length));
});
srv.on('upgrade', (req, sock) => {
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + '\r\n\r\n');
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2) {
      const op = buf[0] & 15; let len = buf[1] & 127, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4); const data = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < data.length; i++) data[i] ^= mask[i % 4];
      buf = buf.subarray(off + 4 + len);
      if (op === 8) { sock.end(Buffer.from([0x88, 0])); return; }
      const head = len < 126 ? Buffer.from([0x80 | op, len]) : Buffer.from([0x80 | op, 126, len >> 8, len & 255]);
      sock.write(Buffer.concat([head, data]));
    }
  });
  sock.on('error', () => {});
});
srv.listen(port, '0.0.0.0', () => console.log('listening', port));
`;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** A DNS server on 127.0.0.1 that answers every A query with 127.0.0.1 (and AAAA with nothing). */
export async function startLoopbackDns(): Promise<{ port: number; queries: string[]; txt: Map<string, string[]>; close(): Promise<void> }> {
  const sock = dgram.createSocket('udp4');
  const queries: string[] = [];
  /** TXT records by (lowercase) name: what a test publishes to prove a domain. */
  const txt = new Map<string, string[]>();
  const txtAnswers = (name: string): Buffer[] => (txt.get(name.toLowerCase()) ?? []).map((v) => {
    const data = Buffer.from(v);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); rr.writeUInt16BE(16, 2); rr.writeUInt16BE(1, 4); rr.writeUInt32BE(5, 6); rr.writeUInt16BE(data.length + 1, 10);
    return Buffer.concat([rr, Buffer.from([data.length]), data]);
  });
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    let o = 12;
    const labels: string[] = [];
    while (o < msg.length && msg[o] !== 0) { labels.push(msg.subarray(o + 1, o + 1 + msg[o]!).toString()); o += msg[o]! + 1; }
    const qEnd = o + 5;
    const qtype = msg.readUInt16BE(o + 1);
    queries.push(`${labels.join('.')} ${qtype}`);
    const header = Buffer.from(msg.subarray(0, 12));
    header.writeUInt16BE(0x8180 | (msg.readUInt16BE(2) & 0x0100), 2); // response, RD copied, RA, NOERROR
    header.writeUInt16BE(1, 4);
    const answers = qtype === 1 ? [Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 1])] : qtype === 16 ? txtAnswers(labels.join('.')) : [];
    header.writeUInt16BE(answers.length, 6);
    header.writeUInt16BE(0, 8);
    header.writeUInt16BE(0, 10);
    const question = msg.subarray(12, qEnd);
    sock.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, queries, txt, close: () => new Promise<void>((r) => sock.close(() => r())) };
}

export interface Pebble {
  directory: string;
  /** Pebble's own TLS certificate (trust it to talk to its API). */
  tlsCertFile: string;
  managementUrl: string;
  proc: ChildProcess;
  logs: string[];
  /** The root that signs issued certificates (PEM), from the management API. */
  root(): Promise<string>;
  stop(): Promise<void>;
}

/** Debian's pebble on 127.0.0.1, validating HTTP-01 on `httpPort` and resolving names through `dnsPort`. */
export async function startPebble(dir: string, httpPort: number, dnsPort: number): Promise<Pebble> {
  await fs.mkdir(dir, { recursive: true });
  const key = path.join(dir, 'pebble.key');
  const cert = path.join(dir, 'pebble.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=pebble',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const [listen, mgmt] = [await freePort(), await freePort()];
  const config = path.join(dir, 'pebble-config.json');
  await fs.writeFile(config, JSON.stringify({ pebble: {
    listenAddress: `127.0.0.1:${listen}`, managementListenAddress: `127.0.0.1:${mgmt}`, certificate: cert, privateKey: key,
    httpPort, tlsPort: await freePort(), ocspResponderURL: '', externalAccountBindingRequired: false,
  } }));
  const logs: string[] = [];
  const proc = spawn('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`], {
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d) => logs.push(String(d)));
  proc.stderr!.on('data', (d) => logs.push(String(d)));
  await waitUntil('pebble to listen', async () => logs.join('').includes('Listening on'), 20_000, 50);
  const httpsGet = async (url: string) => {
    const https = await import('node:https');
    const ca = await fs.readFile(cert);
    return new Promise<string>((resolve, reject) => {
      https.get(url, { ca }, (res) => { let b = ''; res.on('data', (c) => b += c); res.on('end', () => resolve(b)); }).on('error', reject);
    });
  };
  return {
    directory: `https://127.0.0.1:${listen}/dir`, tlsCertFile: cert, managementUrl: `https://127.0.0.1:${mgmt}`, proc, logs,
    root: () => httpsGet(`https://127.0.0.1:${mgmt}/roots/0`),
    async stop() {
      if (proc.exitCode === null) { proc.kill('SIGTERM'); await waitUntil('pebble to exit', async () => proc.exitCode !== null || proc.signalCode !== null, 10_000); }
    },
  };
}
