/**
 * Registries for tests, on loopback only:
 * - `startRegistry()`: Debian's docker-registry (the real distribution
 *   server) on 127.0.0.1 with a temporary storage dir, stopped and removed
 *   by `stop()`;
 * - `startFakeRegistry()`: a tiny in-process v2 server over a blob map, for
 *   what docker-registry cannot easily do in a test: token auth with
 *   credentials, and hanging on purpose.
 *
 * Pulls refuse loopback registries unless an operator lists them (the
 * outbound policy, src/host/images/oci/outbound.ts): a test that pulls from
 * these lists them explicitly, with HEARTH_PRIVATE_REGISTRIES=<host> in the
 * environment of hearthd or `privateRegistries` in its RegistryConfig.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitUntil } from './wait.ts';
import { sha256 } from './oci-images.ts';

export interface Registry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, the host part of references. */
  host: string;
  storage: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export const hasDockerRegistry = await fs.access('/usr/bin/docker-registry').then(() => true, () => false);

export async function startRegistry(): Promise<Registry> {
  const storage = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-registry-'));
  const port = await freePort();
  const config = path.join(storage, 'config.yml');
  await fs.writeFile(config, [
    'version: 0.1',
    'log:', '  level: error', '  accesslog:', '    disabled: true',
    'storage:', '  filesystem:', `    rootdirectory: ${storage}/data`, '  delete:', '    enabled: true',
    'http:', `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n'));
  const logs: string[] = [];
  const proc: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d) => logs.push(String(d)));
  proc.stderr!.on('data', (d) => logs.push(String(d)));
  let exited = false;
  proc.on('exit', () => { exited = true; });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil('docker-registry to answer /v2/', async () => {
    if (exited) throw new Error(`docker-registry exited: ${logs.join('')}`);
    return (await fetch(`${url}/v2/`)).ok;
  }, 20_000, 50);
  return {
    url, host: `127.0.0.1:${port}`, storage,
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        await waitUntil('docker-registry to exit', async () => exited, 10_000).catch(() => proc.kill('SIGKILL'));
      }
      await fs.rm(storage, { recursive: true, force: true });
    },
  };
}

/** Path of a blob's data file in docker-registry's storage (to corrupt it on purpose). */
export function registryBlobPath(reg: Registry, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(reg.storage, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

export interface FakeRegistry extends Registry {
  /** Requests seen: "METHOD path auth?" */
  requests: string[];
  /** Make blob or manifest GETs hang (send headers, then nothing) from now on. */
  hang: 'none' | 'headers' | 'body';
}

export interface FakeRegistryOptions {
  /** repo → tag → manifest bytes (with media type). */
  manifests: Record<string, Record<string, { bytes: Buffer; mediaType: string }>>;
  blobs: Map<string, Buffer>;
  /** Require a Bearer token from /token, which requires these Basic credentials. */
  auth?: { username: string; password: string };
}

export async function startFakeRegistry(opts: FakeRegistryOptions): Promise<FakeRegistry> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const token = 'tok-' + Math.random().toString(36).slice(2);
  const sockets = new Set<net.Socket>();
  const reg: FakeRegistry = {
    url: `http://${host}`, host, storage: '', requests: [], hang: 'none',
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url!, reg.url);
    reg.requests.push(`${req.method} ${u.pathname}${req.headers.authorization ? ` ${req.headers.authorization.split(' ')[0]}` : ''}`);
    if (u.pathname === '/token') {
      const expected = opts.auth ? `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}` : '';
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    if (opts.auth && req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="${reg.url}/token",service="fake",scope="repository:x:pull"`,
      }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (u.pathname === '/v2/') {
      res.writeHead(200).end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(u.pathname);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (reg.hang === 'headers') return; // never answer
    let body: Buffer | undefined;
    let type = 'application/octet-stream';
    if (kind === 'manifests') {
      const byTag = opts.manifests[repo]?.[ref];
      const byDigest = Object.values(opts.manifests[repo] ?? {}).find((x) => sha256(x.bytes) === ref) ?? (opts.blobs.has(ref) ? { bytes: opts.blobs.get(ref)!, mediaType: JSON.parse(opts.blobs.get(ref)!.toString()).mediaType } : undefined);
      const hit = byTag ?? byDigest;
      if (hit) [body, type] = [hit.bytes, hit.mediaType];
      if (!body) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return;
      }
    } else {
      body = opts.blobs.get(ref);
      if (!body) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
        return;
      }
    }
    res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'docker-content-digest': sha256(body) });
    if (reg.hang === 'body' && kind === 'blobs') {
      res.write(body.subarray(0, Math.min(100, body.length)));
      return; // and then nothing
    }
    res.end(body);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return reg;
}
