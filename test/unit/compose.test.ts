/**
 * The composition root against a fake host: every listener comes up on the
 * endpoints it reports, the first-start admin key works, and the namespace
 * and workspace services reach each other through what compose handed them
 * (deleting a namespace deletes its workspaces; a namespace limit refuses a
 * create).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import pino from 'pino';
import { compose } from '../../src/compose.ts';
import { FakeHost } from './fake-host.ts';

test('compose: API, gateway, edge and SSH listen where the endpoints say; admin key; namespaces and workspaces wired both ways', async () => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-compose-'));
  const host = new FakeHost();
  const local = { host: '127.0.0.1', port: 0 };
  const hearth = await compose({
    dataDir, api: local, runtime: local, host, log: pino({ level: 'silent' }), fastPathMs: 2000,
    publicPlane: { edgeHttp: local, edgeHttps: null, ssh: local },
  });
  try {
    assert.ok(hearth.ssh, 'the SSH gateway is built by compose when it is asked for');
    const endpoints = await hearth.start();
    assert.match(endpoints.api, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(endpoints.runtime, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(endpoints.edge ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(endpoints.ssh ?? '', /^ssh:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(endpoints.edge_tls, null);
    assert.ok(host.calls.includes('sync-network 0'), 'network policies are loaded before listening');

    // The SSH listener answers with its banner.
    const sshPort = Number(new URL(endpoints.ssh!.replace('ssh://', 'http://')).port);
    const banner = await new Promise<string>((resolve, reject) => {
      const s = net.connect(sshPort, '127.0.0.1');
      s.once('data', (b) => { resolve(b.toString()); s.destroy(); });
      s.once('error', reject);
    });
    assert.match(banner, /^SSH-2\.0-/);

    const key = await hearth.keys.ensureAdmin();
    assert.ok(key);
    assert.equal(await hearth.keys.ensureAdmin(), null);
    const auth = { 'content-type': 'application/json', 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };
    const call = async (method: string, url: string, body?: unknown) => {
      const res = await fetch(`${endpoints.api}${url}`, { method, headers: auth, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      return { status: res.status, json: (await res.json()) as Record<string, any> };
    };

    assert.equal((await call('POST', '/namespaces', { name: 'team', slug: 'team', resource_limits: { max_workspaces: 1 } })).status, 201);
    const made = await call('POST', '/workspace', { image: 'debian-12', namespace: 'team' });
    assert.equal(made.status, 201);
    assert.equal(made.json.workspace.namespace, 'team');
    // Admission (the namespace service) counts the namespace's workspaces (the workspace service).
    const refused = await call('POST', '/workspace', { image: 'debian-12', namespace: 'team' });
    assert.equal(refused.status, 409);
    assert.equal(refused.json.code, 'NAMESPACE_LIMIT_REACHED');
    // Deleting the namespace deletes its workspace through the workspace service.
    const gone = await call('DELETE', '/namespaces/team', { deleteWorkspaces: true });
    assert.equal(gone.status, 200);
    assert.equal(gone.json.deleted_workspaces, 1);
    assert.equal(await hearth.workspaces.byId(made.json.workspace.id), null);
  } finally {
    await hearth.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
});
