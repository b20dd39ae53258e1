/**
 * The console's session against the attacks it exists to stop, on a real
 * `hearth serve`: a state-changing request without (or with a wrong) CSRF
 * token is refused and changes nothing; the session cookie is HttpOnly and
 * SameSite=Strict (and page scripts cannot read it); a one-time sign-in link
 * from `hearth console-link` works once; a session sees exactly what its key
 * may see (a namespace key's session does not see another tenant's
 * workspace, even by id); the proxy's own credential cannot be forged.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { Oblien } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { Browsing, chromiumMissing } from './browser.ts';

const skip = needsRoot || await chromiumMissing();
const repo = path.resolve(import.meta.dirname, '..', '..');

let h: HearthInstance;
let client: Oblien;
let b: Browsing;
let wsId: string;

before(async () => {
  if (skip) return;
  h = await startHearth({ extraArgs: ['--edge-listen', 'off', '--edge-tls-listen', 'off', '--ssh-listen', 'off'] });
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  wsId = (await client.workspaces.create({ image: 'debian-12', name: 'target', config: { ttl: '15m' } } as never) as Record<string, any>).id;
  b = await Browsing.launch();
});

after(async () => {
  await b?.close();
  if (h) await h.stop();
});

const opts = { skip, timeout: 90_000 };

/** Sign in over HTTP as the browser does; returns the cookie header and the CSRF token. */
async function signIn(clientId: string, clientSecret: string): Promise<{ cookie: string; csrf: string; setCookie: string[] }> {
  const res = await fetch(`${h.api}/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: clientId, client_secret: clientSecret }) });
  assert.equal(res.status, 200, await res.clone().text());
  const setCookie = res.headers.getSetCookie();
  const cookie = setCookie.map((c) => c.split(';')[0]).join('; ');
  return { cookie, csrf: ((await res.json()) as any).csrf, setCookie };
}

test('a state-changing console request without the CSRF token, or with a wrong one, is refused and changes nothing', opts, async () => {
  const s = await signIn(h.clientId, h.clientSecret);
  const put = (headers: Record<string, string>) => fetch(`${h.api}/console/api/workspace/${wsId}/metadata`, {
    method: 'PUT', headers: { cookie: s.cookie, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ metadata: { owner: 'attacker' } }),
  });
  for (const headers of [{}, { 'x-csrf-token': 'guessed' }, { 'x-csrf-token': '' }] as Record<string, string>[]) {
    const res = await put(headers);
    assert.equal(res.status, 403, JSON.stringify(headers));
    const body = await res.json() as any;
    assert.equal(body.success, false);
    assert.equal(body.code, 'forbidden');
    assert.match(body.message, /CSRF/);
  }
  // The cookie's copy of the token alone (a forged cookie jar without the header) is not enough either.
  assert.equal((await fetch(`${h.api}/console/api/workspace/${wsId}/stop`, { method: 'POST', headers: { cookie: s.cookie } })).status, 403);
  assert.equal((await client.workspaces.get(wsId) as any).status !== 'stopped', true);
  assert.deepEqual(((await (await fetch(`${h.api}/console/api/workspace/${wsId}/metadata`, { headers: { cookie: s.cookie } })).json()) as any).metadata, {});
  // With the token, the same request goes through.
  const ok = await put({ 'x-csrf-token': s.csrf });
  assert.equal(ok.status, 200);
  assert.deepEqual(((await ok.json()) as any).metadata, { owner: 'attacker' });
  // Sign-out is state-changing too.
  assert.equal((await fetch(`${h.api}/console/session`, { method: 'DELETE', headers: { cookie: s.cookie } })).status, 403);
});

test('the session cookie is HttpOnly and SameSite=Strict, and page scripts cannot read it', opts, () => b.run('cookie flags', async () => {
  const s = await signIn(h.clientId, h.clientSecret);
  const session = s.setCookie.find((c) => c.startsWith('hearth_console='))!;
  assert.match(session, /;\s*HttpOnly/i);
  assert.match(session, /;\s*SameSite=Strict/i);
  assert.match(session, /;\s*Path=\/console/);
  const ctx = await b.context();
  const w = await b.page(ctx);
  await w.page.goto(`${h.api}/console/`);
  await w.page.getByLabel('Client ID').fill(h.clientId);
  await w.page.getByLabel('Client secret').fill(h.clientSecret);
  await w.page.getByRole('button', { name: 'Sign in' }).click();
  await w.page.getByRole('heading', { name: 'Workspaces' }).waitFor();
  const c = (await ctx.cookies()).find((x) => x.name === 'hearth_console')!;
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, 'Strict');
  const visible = await w.page.evaluate(() => document.cookie);
  assert.ok(!visible.includes('hearth_console'), `document.cookie shows only the CSRF token: ${visible}`);
  await ctx.close();
}));

test('a one-time sign-in link from `hearth console-link` signs in once, then is refused', opts, () => b.run('one-time link', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(repo, 'bin/hearth.mjs'), 'console-link', '--data-dir', h.dataDir, '--json']);
  const link = JSON.parse(stdout) as { url: string; client_id: string };
  assert.equal(link.client_id, h.clientId);
  assert.ok(link.url.startsWith(`${h.api}/console/link/`), link.url);
  const first = await b.context();
  const w1 = await b.page(first);
  await w1.page.goto(link.url);
  await w1.page.getByRole('heading', { name: 'Workspaces' }).waitFor();
  assert.equal(new URL(w1.page.url()).pathname, '/console/', 'the token leaves the address bar');
  await w1.page.locator(`tr[data-id="${wsId}"]`).waitFor();
  const second = await b.context();
  const w2 = await b.page(second);
  w2.allow.push(/status of 401/);
  await w2.page.goto(link.url);
  await w2.page.getByRole('alert').filter({ hasText: 'already used or has expired' }).waitFor();
  assert.deepEqual((await second.cookies()).filter((c) => c.name === 'hearth_console'), []);
  await first.close();
  await second.close();
}));

test('a namespace key\'s session sees only that namespace: not another workspace, not even by id', opts, async () => {
  const admin = { 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret, 'content-type': 'application/json' };
  assert.equal((await fetch(`${h.api}/namespaces`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'tenant-a', slug: 'tenant-a' }) })).status < 300, true);
  const key = await (await fetch(`${h.api}/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'tenant key', namespace: 'tenant-a' }) })).json() as any;
  const s = await signIn(key.clientId, key.clientSecret);
  const list = await (await fetch(`${h.api}/console/api/workspace`, { headers: { cookie: s.cookie } })).json() as any;
  assert.deepEqual(list.workspaces.map((w: any) => w.id), []);
  const one = await fetch(`${h.api}/console/api/workspace/${wsId}`, { headers: { cookie: s.cookie } });
  assert.equal(one.status, 404);
  const del = await fetch(`${h.api}/console/api/workspace/${wsId}`, { method: 'DELETE', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
  assert.equal(del.status, 404);
  // Admin-only routes stay admin-only.
  assert.equal((await fetch(`${h.api}/console/api/keys`, { headers: { cookie: s.cookie } })).status, 403);
  // Revoking the key ends its console session at once.
  assert.equal((await fetch(`${h.api}/keys/${key.clientId}`, { method: 'DELETE', headers: admin })).status, 200);
  assert.equal((await fetch(`${h.api}/console/api/workspace`, { headers: { cookie: s.cookie } })).status, 401);
});

test('the proxy\'s session header cannot be forged from outside, and a bare cookie does not work on the API itself', opts, async () => {
  const s = await signIn(h.clientId, h.clientSecret);
  const sid = /hearth_console=([^;]+)/.exec(s.cookie)![1]!;
  for (const forged of [`x.${sid}`, sid, `.${sid}`]) {
    const res = await fetch(`${h.api}/workspace`, { headers: { 'x-hearth-console-session': forged } });
    assert.equal(res.status, 401, forged);
  }
  assert.equal((await fetch(`${h.api}/workspace`, { headers: { cookie: s.cookie } })).status, 401);
  // A proxied request cannot smuggle other credentials either: they are not forwarded.
  const res = await fetch(`${h.api}/console/api/workspace`, { headers: { 'x-client-id': 'hk_x', 'x-client-secret': 'y' } });
  assert.equal(res.status, 401);
});
