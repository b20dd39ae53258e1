/**
 * The isolation issue's grant bypasses against a real hearthd and a real
 * container: a workspace token minted with `permissions: { runtime: false,
 * destroy: false }` may not run code (a workload, an SSH key), may not delete
 * its workspace (remove_on_exit then stop, a TTL that removes) and may not
 * read its secrets (config.env, workload env and logs). What runs inside is
 * checked with the admin key's own runtime token: nothing the token tried left
 * a trace, and the workspace is still there.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

let h: HearthInstance;
let admin: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  admin = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

const SECRET = 'sk_live_acceptance_secret';

async function call(method: string, url: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${h.api}${url}`, { method, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const json = await res.json() as any;
  if (res.status >= 400) assert.deepEqual([json.success, typeof json.code, typeof json.message], [false, 'string', 'string'], `${method} ${url}: contract error shape`);
  return { status: res.status, json };
}

test('a runtime:false, destroy:false workspace token runs no code, deletes nothing and reads no secret', { skip: needsRoot }, async () => {
  const adminH = { 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret };
  const ws = await admin.workspaces.create({ image: 'debian-12', mode: 'temporary', config: { ttl: '15m', memory_mb: 256, env: [`API_KEY=${SECRET}`] } } as never) as any;
  const owner = await call('POST', `/workspace/${ws.id}/workloads`, adminH, { name: 'owner', cmd: ['sh', '-c', 'echo "key=$API_KEY"; sleep 1000'] });
  assert.equal(owner.status, 201, JSON.stringify(owner.json));
  const t = await admin.tokens.create({ scope: 'workspace', workspaceId: ws.id, ttl: 600, permissions: { runtime: false, destroy: false } } as never) as { token: string };
  const tok = { authorization: `Bearer ${t.token}` };
  const refused = (r: { status: number; json: any }, grant: string, what: string) => {
    assert.equal(r.status, 403, `${what}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.message, new RegExp(`permissions\\.${grant}`), what);
  };

  // Code: a workload, an SSH key, the workspace's own cmd.
  refused(await call('POST', `/workspace/${ws.id}/workloads`, tok, { name: 'pwn', cmd: ['sh', '-c', 'touch /tmp/pwned'] }), 'runtime', 'workload create');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'grants-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'k')]);
  refused(await call('POST', `/workspace/${ws.id}/ssh/key`, tok, { public_key: await fs.readFile(path.join(dir, 'k.pub'), 'utf8') }), 'runtime', 'ssh key');
  await fs.rm(dir, { recursive: true, force: true });
  refused(await call('POST', `/workspace/${ws.id}/ssh/enable`, tok), 'runtime', 'ssh enable');
  assert.equal((await call('GET', `/workspace/${ws.id}/ssh`, adminH)).json.ssh_key_set, false);

  // Deletion: remove_on_exit then stop; a TTL that removes.
  refused(await call('PUT', `/workspace/${ws.id}`, tok, { config: { remove_on_exit: true } }), 'destroy', 'remove_on_exit');
  refused(await call('PUT', `/workspace/${ws.id}/lifecycle/ttl`, tok, { ttl: '1s', ttl_action: 'remove' }), 'destroy', 'ttl_action remove');
  refused(await call('PUT', `/workspace/${ws.id}`, tok, { config: { ttl: '1s', ttl_action: 'remove' } }), 'destroy', 'ttl_action remove by update');
  const got = await admin.workspaces.get(ws.id) as any;
  assert.deepEqual([got.config.remove_on_exit, got.config.ttl_action, got.config.ttl], [false, 'stop', '15m'], 'the refusals changed nothing');

  // Secrets: env values, workload env, logs.
  for (const url of [`/workspace/${ws.id}`, `/workspace/${ws.id}/config`, `/workspace/${ws.id}/details`, `/workspace/${ws.id}/workloads`, `/workspace/${ws.id}/workloads/owner`]) {
    const r = await call('GET', url, tok);
    assert.equal(r.status, 200, url);
    assert.ok(!JSON.stringify(r.json).includes(SECRET), `${url} leaks the secret`);
  }
  assert.deepEqual((await call('GET', `/workspace/${ws.id}`, tok)).json.workspace.config.env, ['API_KEY=[redacted]']);
  refused(await call('GET', `/workspace/${ws.id}/workloads/owner/logs`, tok), 'runtime', 'workload logs');
  refused(await call('GET', `/workspace/${ws.id}/logs?source=owner`, tok), 'runtime', 'workspace logs');

  // Inside: nothing ran. The admin key still reads everything.
  const rt = new Runtime({ token: (await admin.workspaces.apiAccess.enable(ws.id) as { token: string }).token, baseUrl: h.runtime });
  assert.notEqual((await rt.exec.run(['test', '-e', '/tmp/pwned'])).exit_code, 0, 'the refused workload never ran');
  assert.deepEqual((await admin.workspaces.get(ws.id) as any).config.env, [`API_KEY=${SECRET}`]);

  // A stop is still the token's (manage), and it is a stop: the workspace stays.
  assert.equal((await call('POST', `/workspace/${ws.id}/stop`, tok)).status, 200);
  assert.equal((await admin.workspaces.get(ws.id) as any).status, 'stopped');
  refused(await call('DELETE', `/workspace/${ws.id}`, tok), 'destroy', 'delete');
  await admin.workspaces.delete(ws.id);
});
