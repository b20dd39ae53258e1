/**
 * Public access, domains and SSH routes in-process (fastify inject, SQLite
 * :memory:, the fake host): shapes the SDK reads, limits, conflicts, and
 * that deleting a workspace releases its hostnames.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Db } from '../../src/store/db.ts';
import { openTestStore } from '../helpers/store.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { SnapshotService } from '../../src/control/snapshots.ts';
import { ApiKeys, createApiKey } from '../../src/auth/keys.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS } from '../../src/control/workspaces/index.ts';
import { buildApi, type ApiApp } from '../../src/api/server.ts';
import { agentClientFor } from '../../src/control/workloads.ts';
import { ERROR_STATUS } from '../../src/api/errors.ts';
import { createPublicServices, type PublicServices } from '../../src/control/public-services.ts';
import { verifyPassword } from '../../src/control/ssh.ts';
import { publicDb } from '../../src/control/public-tables.ts';
import { FakeHost } from './fake-host.ts';

let db: Db;
let api: ApiApp;
let pub: PublicServices;
let auth: Record<string, string>;
/** The test's DNS: TXT records by name (nothing else resolves). */
const txt = new Map<string, string[]>();
const noData = () => Object.assign(new Error('no data'), { code: 'ENODATA' });
async function fakeDns(name: string, type: 'A' | 'CNAME' | 'TXT'): Promise<string[]> {
  const v = type === 'TXT' ? txt.get(name) : undefined;
  if (!v) throw noData();
  return v;
}

before(async () => {
  db = await openTestStore();
  const host = new FakeHost();
  const log = pino({ level: 'silent' });
  const workspaces = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 });
  pub = createPublicServices({ db, workspaces, log }, { previewDomain: 'preview.test', edgePorts: () => ({ http: 80, https: 443 }), endpoint: () => ({ host: 'gw.test', port: 2222 }), resolveDns: fakeDns });
  const signer = new TokenSigner('test-secret');
  api = buildApi({ workspaces, agent: agentClientFor(host), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, workspaces, log), log, runtimeUrl: () => 'http://gw', publicServices: pub } as never);
  const key = await createApiKey(db, { name: 'admin', admin: true });
  auth = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };
});
after(async () => { await api.app.close(); await db.destroy(); });

async function call(method: string, url: string, body?: unknown) {
  const res = await api.app.inject({ method: method as 'GET', url, headers: { 'content-type': 'application/json', ...auth }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
  const json = res.json() as Record<string, any>;
  if (res.statusCode >= 400) {
    assert.equal(json.success, false);
    assert.equal(ERROR_STATUS[json.code as keyof typeof ERROR_STATUS], res.statusCode, `status of ${json.code}`);
  } else assert.equal(json.success, true, `${method} ${url}`);
  return { status: res.statusCode, json };
}

/** Proof of ownership: publish the TXT record the API asked for, then ask for verification. */
async function prove(id: string, verification: { host: string; value: string }, domain: string): Promise<void> {
  txt.set(verification.host, [verification.value]);
  const v = await call('POST', '/domain/verify', { domain, resource_id: id });
  assert.equal(v.json.ownership, true, `${domain} proven`);
}

async function newWorkspace(): Promise<string> {
  return (await call('POST', '/workspace', { image: 'node-20', config: {} })).json.workspace.id;
}

test('expose → list → updateSlug → revoke, with the shapes the SDK reads', async () => {
  const id = await newWorkspace();
  const e = await call('POST', `/workspace/${id}/public-access`, { port: 3000, label: 'web' });
  const p = e.json.port;
  assert.equal(p.port, 3000);
  assert.equal(p.url, `https://${p.hash}.preview.test`);
  assert.equal(p.label, 'web');
  assert.equal((await call('POST', `/workspace/${id}/public-access`, { port: 3000 })).json.port.hash, p.hash);
  assert.deepEqual(pub.publicAccess.route(`${p.hash}.preview.test`), { hostname: `${p.hash}.preview.test`, workspaceId: id, port: 3000, source: 'preview' });
  const list = await call('GET', `/workspace/${id}/public-access`);
  assert.deepEqual(list.json.ports.map((x: any) => x.port), [3000]);
  const moved = await call('PATCH', `/workspace/${id}/public-access/3000`, { slug: 'shop' });
  assert.equal(moved.json.port.url, 'https://shop.preview.test');
  assert.ok(pub.publicAccess.route('shop.preview.test'));
  const net = await call('GET', `/workspace/${id}/network`);
  assert.deepEqual(net.json.ingress_ports, [3000]);
  assert.equal((await call('DELETE', `/workspace/${id}/public-access/3000`)).json.revoked, true);
  assert.equal(pub.publicAccess.route('shop.preview.test'), undefined);
  assert.equal(pub.publicAccess.route(`${p.hash}.preview.test`), undefined);
  assert.equal((await call('DELETE', `/workspace/${id}/public-access/3000`)).status, 404);
  for (const bad of [{ port: 0 }, { port: 9990 }, { port: 80, slug: 'A!' }, { port: 80, domain: 'nope' }, {}]) {
    assert.equal((await call('POST', `/workspace/${id}/public-access`, bad)).status, 400, JSON.stringify(bad));
  }
});

test('at most 20 ports; a hostname held by another workspace is 409', async () => {
  const a = await newWorkspace();
  const b = await newWorkspace();
  for (let port = 4000; port < 4020; port++) assert.equal((await call('POST', `/workspace/${a}/public-access`, { port })).status, 200);
  const over = await call('POST', `/workspace/${a}/public-access`, { port: 5000 });
  assert.equal(over.status, 409);
  assert.equal(over.json.code, 'PORT_LIMIT_REACHED');
  assert.deepEqual([over.json.current, over.json.max], [20, 20]);
  const exposed = await call('POST', `/workspace/${a}/public-access`, { port: 4000, domain: 'api.example.com' });
  await prove(a, exposed.json.port.verification, 'api.example.com');
  assert.equal((await call('POST', `/workspace/${b}/public-access`, { port: 3000, domain: 'api.example.com' })).status, 409);
  assert.equal((await call('POST', `/workspace/${b}/domain`, { domain: 'api.example.com' })).status, 409);
  assert.equal((await call('POST', '/domain/check-slug', { slug: 'free-one' })).json.available, true);
});

test('custom domain per workspace: connect, get (camelCase), routes, disconnect; deleting the workspace releases names', async () => {
  const id = await newWorkspace();
  const c = await call('POST', `/workspace/${id}/domain`, { domain: 'Shop.Example.org', port: 8080, include_www: true });
  assert.equal(c.json.domain, 'shop.example.org');
  assert.equal(c.json.url, 'https://shop.example.org');
  await prove(id, c.json.verification, 'shop.example.org');
  assert.ok(pub.publicAccess.route('www.shop.example.org'));
  const got = await call('GET', `/workspace/${id}/domain`);
  assert.equal(got.json.domain.customDomain, 'shop.example.org');
  assert.equal(got.json.domain.port, 8080);
  assert.equal(got.json.domain.includeWww, true);
  const routes = await call('GET', '/domain/routes');
  assert.ok(routes.json.data.some((r: any) => r.hostname === 'shop.example.org' && r.is_custom && r.target === `${id}:8080`));
  // Moving the domain to another port keeps one record.
  await call('POST', `/workspace/${id}/domain`, { domain: 'shop.example.org', port: 9000 });
  assert.equal(pub.publicAccess.route('shop.example.org')!.port, 9000);
  assert.equal(pub.publicAccess.route('www.shop.example.org'), undefined);
  await call('DELETE', `/workspace/${id}/domain`);
  assert.equal((await call('GET', `/workspace/${id}/domain`)).json.domain, null);
  assert.equal((await call('DELETE', `/workspace/${id}/domain`)).status, 404);

  const gone = await call('POST', `/workspace/${id}/domain`, { domain: 'gone.example.org' });
  await prove(id, gone.json.verification, 'gone.example.org');
  assert.ok(pub.publicAccess.route('gone.example.org'));
  await call('DELETE', `/workspace/${id}`);
  await pub.publicAccess.reload();
  assert.equal(pub.publicAccess.route('gone.example.org'), undefined, 'cascade: the names die with the workspace');
  const other = await newWorkspace();
  assert.equal((await call('POST', `/workspace/${other}/domain`, { domain: 'gone.example.org' })).status, 200);
});

test('a custom domain is pending (not routed, no certificate) until its TXT record exists; pending claims squat nothing; a proven domain refuses others', async () => {
  const requested: string[] = [];
  pub.publicAccess.certs = {
    request: async (h) => { requested.push(h); }, renew: async () => ({ status: 'none', source: null, expiresAt: null, error: null }),
    info: async () => ({ status: 'none', source: null, expiresAt: null, error: null }), release: async () => undefined,
    setAutoRenew: async () => true, list: async () => [],
  };
  try {
    const a = await newWorkspace();
    const b = await newWorkspace();
    const c = await call('POST', `/workspace/${a}/domain`, { domain: 'claim.example.net', port: 3000, include_www: true });
    assert.equal(pub.publicAccess.route('claim.example.net'), undefined, 'pending: not routed');
    assert.deepEqual(requested, [], 'pending: no certificate requested');
    assert.equal(c.json.status, 'pending');
    assert.equal(c.json.verification.type, 'TXT');
    assert.equal(c.json.verification.host, '_hearth-challenge.claim.example.net');
    assert.match(c.json.verification.value, /^hearth-verify=[a-z2-7]{32}$/);
    assert.equal(c.json.dns.ownership, false);
    assert.equal(c.json.dns.required_records.txt.value, c.json.verification.value);
    assert.equal(pub.publicAccess.route('claim.example.net'), undefined, 'pending: not routed');
    assert.equal(pub.publicAccess.pending('claim.example.net'), true);
    assert.deepEqual(requested, [], 'pending: no certificate requested');
    // Reconnecting is idempotent: same token, still pending.
    const again = await call('POST', `/workspace/${a}/domain`, { domain: 'claim.example.net', port: 3000, include_www: true });
    assert.equal(again.json.verification.value, c.json.verification.value);
    assert.equal((await call('GET', `/workspace/${a}/domain`)).json.domain.status, 'pending');

    // B's pending claim takes the (unproven) domain over: nobody squats a name by asking first. B gets its own token.
    const cb = await call('POST', `/workspace/${b}/domain`, { domain: 'claim.example.net', port: 3000 });
    assert.equal(cb.json.status, 'pending');
    assert.notEqual(cb.json.verification.value, c.json.verification.value);
    // A wrong token proves nothing.
    const right: string = cb.json.verification.value;
    txt.set('_hearth-challenge.claim.example.net', [right.slice(0, -1) + (right.endsWith('a') ? 'b' : 'a')]);
    assert.equal((await call('POST', `/workspace/${b}/domain/check`, { domain: 'claim.example.net' })).json.ownership, false);
    assert.equal(pub.publicAccess.route('claim.example.net'), undefined);

    // A (the DNS owner) publishes its record and connects again: proven, routed, certificates requested.
    await call('POST', `/workspace/${a}/domain`, { domain: 'claim.example.net', port: 3000, include_www: true });
    await prove(a, c.json.verification, 'claim.example.net');
    assert.equal((await call('GET', `/workspace/${a}/domain`)).json.domain.status, 'active');
    assert.equal(pub.publicAccess.route('claim.example.net')!.workspaceId, a);
    assert.equal(pub.publicAccess.route('www.claim.example.net')!.workspaceId, a, 'the proof covers www');
    assert.deepEqual(requested.sort(), ['claim.example.net', 'www.claim.example.net']);

    // Now B is refused, by connect and by expose, and routes nothing.
    assert.equal((await call('POST', `/workspace/${b}/domain`, { domain: 'claim.example.net' })).status, 409);
    assert.equal((await call('POST', `/workspace/${b}/public-access`, { port: 3000, domain: 'claim.example.net' })).status, 409);
    assert.equal(pub.publicAccess.route('claim.example.net')!.workspaceId, a);
    assert.equal((await call('GET', `/workspace/${b}/domain`)).json.domain, null, "B's pending claim was taken over");

    // An exposed port on a custom hostname waits the same way; a slug under a proven base rides on its proof.
    const e = await call('POST', `/workspace/${b}/public-access`, { port: 4000, domain: 'api.other.example.net' });
    assert.equal(e.json.port.status, 'pending');
    assert.equal(e.json.port.verification.host, '_hearth-challenge.api.other.example.net');
    assert.equal(pub.publicAccess.route('api.other.example.net'), undefined);
    assert.ok(pub.publicAccess.route(`${e.json.port.hash}.preview.test`), 'the preview URL works meanwhile');
    txt.set(e.json.port.verification.host, [e.json.port.verification.value]);
    const listed = await call('GET', `/workspace/${b}/public-access`);
    assert.equal(listed.json.ports.find((x: any) => x.port === 4000).status, 'active', 'verified on read');
    assert.equal(pub.publicAccess.route('api.other.example.net')!.workspaceId, b);
    const s = await call('POST', `/workspace/${a}/public-access`, { port: 5000, slug: 'shop', domain: 'claim.example.net' });
    assert.equal(s.json.port.status, 'active');
    assert.equal(pub.publicAccess.route('shop.claim.example.net')!.workspaceId, a);

    // A proof does not outlive its use: disconnected and revoked, the claim is pending again (same token),
    // so reconnecting after the record is gone (the domain changed hands) routes nothing.
    await call('DELETE', `/workspace/${a}/public-access/5000`);
    await call('DELETE', `/workspace/${a}/domain`);
    txt.delete('_hearth-challenge.claim.example.net');
    const back = await call('POST', `/workspace/${a}/domain`, { domain: 'claim.example.net', port: 3000 });
    assert.equal(back.json.status, 'pending');
    assert.equal(back.json.verification.value, c.json.verification.value, 'same token');
    assert.equal(pub.publicAccess.route('claim.example.net'), undefined);
    await prove(a, c.json.verification, 'claim.example.net');
    assert.equal(pub.publicAccess.route('claim.example.net')!.workspaceId, a);
  } finally {
    pub.publicAccess.certs = null;
  }
});

test('a proven domain covers names under it: an exposed api.<domain> routes at once and keeps routing while it uses the proof', async () => {
  const id = await newWorkspace();
  const c = await call('POST', `/workspace/${id}/domain`, { domain: 'parent.example.net', port: 3000 });
  await prove(id, c.json.verification, 'parent.example.net');
  const e = await call('POST', `/workspace/${id}/public-access`, { port: 4000, domain: 'api.parent.example.net' });
  assert.equal(pub.publicAccess.route('api.parent.example.net')!.workspaceId, id, 'routed at once, no second record');
  assert.equal(e.json.port.status, 'active');
  assert.equal(e.json.port.verification.host, '_hearth-challenge.parent.example.net', 'the proof that counts is the parent');
  // Disconnecting the parent keeps its proof alive: the exposed name still uses it.
  await call('DELETE', `/workspace/${id}/domain`);
  assert.equal(pub.publicAccess.route('parent.example.net'), undefined);
  assert.equal((await call('GET', `/workspace/${id}/public-access`)).json.ports.find((x: any) => x.port === 4000).status, 'active');
  assert.equal(pub.publicAccess.route('api.parent.example.net')!.workspaceId, id);
});

test('the timer pass proves a pending domain once its record appears, with no call from the owner; running it again changes nothing', async () => {
  const id = await newWorkspace();
  const c = await call('POST', `/workspace/${id}/domain`, { domain: 'timer.example.net', port: 3000 });
  await pub.publicAccess.verifyPending();
  assert.equal(pub.publicAccess.route('timer.example.net'), undefined);
  txt.set(c.json.verification.host, [c.json.verification.value]);
  await pub.publicAccess.verifyPending();
  assert.equal(pub.publicAccess.route('timer.example.net')!.workspaceId, id);
  await pub.publicAccess.verifyPending();
  assert.equal(pub.publicAccess.route('timer.example.net')!.workspaceId, id);
  const rows = await publicDb(db).selectFrom('edge_hosts').select('hostname').where('hostname', '=', 'timer.example.net').execute();
  assert.equal(rows.length, 1);
});

test('upgrade: a custom name routed before proofs existed is not routed, and at start it loses its row and gets a pending claim', async () => {
  const id = await newWorkspace();
  const pdb = publicDb(db);
  const at = new Date().toISOString();
  // The state an older Hearth left: a connected domain with its edge_hosts row, and no claim.
  await pdb.insertInto('workspace_domains').values({ workspace_id: id, domain: 'legacy.example.com', port: 3000, include_www: 0, created_at: at }).execute();
  await pdb.insertInto('edge_hosts').values({ hostname: 'legacy.example.com', workspace_id: id, port: 3000, source: 'domain', created_at: at }).execute();
  await pub.publicAccess.reload();
  assert.equal(pub.publicAccess.route('legacy.example.com'), undefined, 'the route table never holds an unproven custom name');
  assert.deepEqual(await pub.publicAccess.demoteUnproven(), ['legacy.example.com']);
  assert.equal(await pdb.selectFrom('edge_hosts').select('hostname').where('hostname', '=', 'legacy.example.com').executeTakeFirst(), undefined);
  const got = await call('GET', `/workspace/${id}/domain`);
  assert.equal(got.json.domain.status, 'pending');
  assert.equal(got.json.domain.verification.host, '_hearth-challenge.legacy.example.com');
  assert.equal(pub.publicAccess.pending('legacy.example.com'), true);
  await prove(id, got.json.domain.verification, 'legacy.example.com');
  assert.equal(pub.publicAccess.route('legacy.example.com')!.workspaceId, id);
  assert.deepEqual(await pub.publicAccess.demoteUnproven(), [], 'a proven name stays');
});

test('ssh: status, enable returns a password once, key and password validation', async () => {
  const id = await newWorkspace();
  const s0 = await call('GET', `/workspace/${id}/ssh`);
  assert.equal(s0.json.ssh_enabled, false);
  assert.equal(s0.json.connection, null);
  const en = await call('POST', `/workspace/${id}/ssh/enable`);
  assert.equal(typeof en.json.ssh_password, 'string');
  assert.equal(en.json.connection.command, `ssh -p 2222 ${id}@gw.test`);
  assert.equal(en.json.connection.bastion, 'gw.test:2222');
  assert.equal(en.json.connection.host, id);
  const again = await call('POST', `/workspace/${id}/ssh/enable`);
  assert.equal(again.json.ssh_password, undefined, 'the password is shown once');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ssh-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'k')]);
  const k = await call('POST', `/workspace/${id}/ssh/key`, { public_key: await fs.readFile(path.join(dir, 'k.pub'), 'utf8') });
  assert.equal(k.json.ssh_key_set, true);
  assert.equal((await call('POST', `/workspace/${id}/ssh/key`, { public_key: await fs.readFile(path.join(dir, 'k'), 'utf8') })).status, 400, 'a private key is refused');
  assert.equal((await call('POST', `/workspace/${id}/ssh/password`, { password: '1234' })).status, 400);
  assert.equal((await call('POST', `/workspace/${id}/ssh/password`, { password: 'long-enough-pw', user: 'Bad User' })).status, 400);
  await call('POST', `/workspace/${id}/ssh/password`, { password: 'long-enough-pw' });
  const login = await pub.ssh.login(id);
  assert.ok(login && login.keys.length === 1);
  assert.equal(await verifyPassword('long-enough-pw', login.access.password_hash), true);
  assert.equal(await verifyPassword('wrong', login.access.password_hash), false);
  await call('POST', `/workspace/${id}/ssh/disable`);
  assert.equal(await pub.ssh.login(id), null);
  await fs.rm(dir, { recursive: true, force: true });
});
