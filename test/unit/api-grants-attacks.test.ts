/**
 * The attacks of the isolation issue, through the real API with a real
 * workspace token minted with `permissions: { runtime: false, destroy: false }`:
 * it must not run code (a workload, an SSH key or password), must not delete
 * its workspace by any road (remove_on_exit then stop, a TTL that removes),
 * and must not read the workspace's secrets (env values, logs). Each refusal
 * leaves the workspace as it was; the admin key can still do all of it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import ssh2 from 'ssh2';
import { startGrantsHarness, type GrantsHarness } from './grants-harness.ts';

let h: GrantsHarness;
let wsId: string;
let limited: Record<string, string>;
const SECRET = 'sk_live_do_not_leak';
/** What a redacted env value reads as (src/api/views.ts REDACTED). */
const REDACTED = '[redacted]';

before(async () => {
  h = await startGrantsHarness();
  wsId = await h.workspace({ mode: 'temporary', config: { ttl: '1h', env: [`API_KEY=${SECRET}`, 'PLAIN=1'] } });
  // A workload of the owner's, whose env and logs hold the secret too.
  const w = await h.call('POST', `/workspace/${wsId}/workloads`, { name: 'owner', cmd: ['sh', '-c', 'echo "key is $API_KEY"; sleep 1000'], env: { API_KEY: SECRET } });
  assert.equal(w.status, 201, JSON.stringify(w.json));
  limited = await h.token({ scope: 'workspace', workspaceId: wsId, permissions: { runtime: false, destroy: false } });
});
after(async () => {
  await h?.call('DELETE', `/workspace/${wsId}/workloads`).catch(() => undefined);
  await h?.close();
});

async function snapshot(): Promise<string> {
  const ws = await h.service.byId(wsId);
  assert.ok(ws, 'the workspace still exists');
  return JSON.stringify({ state: ws.state, mode: ws.mode, config: ws.config, ttl: ws.ttlExpiresAt });
}

function assertRefused(r: { status: number; json: Record<string, any> }, grant: string, what: string): void {
  assert.equal(r.status, 403, `${what}: ${r.status} ${JSON.stringify(r.json)}`);
  assert.equal(r.json.code, 'forbidden', what);
  assert.match(r.json.message, new RegExp(`permissions\\.${grant}`), what);
}

test('the token may not run code: no workload create, start or change, no SSH key, password or enable', async () => {
  const before = await snapshot();
  const workloadsBefore = (await h.call('GET', `/workspace/${wsId}/workloads`)).json.workloads.length;
  assertRefused(await h.call('POST', `/workspace/${wsId}/workloads`, { name: 'pwn', cmd: ['sh', '-c', 'touch /tmp/pwned'] }, limited), 'runtime', 'workload create');
  assertRefused(await h.call('PATCH', `/workspace/${wsId}/workloads/owner`, { cmd: ['sh', '-c', 'touch /tmp/pwned'] }, limited), 'runtime', 'workload patch');
  assertRefused(await h.call('POST', `/workspace/${wsId}/workloads/owner/restart`, undefined, limited), 'runtime', 'workload restart');
  assert.equal((await h.call('GET', `/workspace/${wsId}/workloads`)).json.workloads.length, workloadsBefore, 'no workload was created');

  const { public: pub } = ssh2.utils.generateKeyPairSync('ed25519');
  assertRefused(await h.call('POST', `/workspace/${wsId}/ssh/key`, { public_key: pub }, limited), 'runtime', 'ssh key');
  assertRefused(await h.call('POST', `/workspace/${wsId}/ssh/password`, { password: 'correct horse battery' }, limited), 'runtime', 'ssh password');
  assertRefused(await h.call('POST', `/workspace/${wsId}/ssh/enable`, undefined, limited), 'runtime', 'ssh enable (mints a password)');
  const ssh = (await h.call('GET', `/workspace/${wsId}/ssh`, undefined, limited)).json;
  assert.deepEqual([ssh.ssh_enabled, ssh.ssh_key_set, ssh.password_auth_enabled], [false, false, false], 'no SSH credential was set');
  // Code through the workspace's own config: cmd, workloads and env are the runtime grant's too.
  assertRefused(await h.call('PUT', `/workspace/${wsId}`, { config: { cmd: 'touch /tmp/pwned' } }, limited), 'runtime', 'config.cmd');
  assertRefused(await h.call('PUT', `/workspace/${wsId}`, { config: { env: ['LD_PRELOAD=/tmp/x.so'] } }, limited), 'runtime', 'config.env');
  assert.equal(await snapshot(), before, 'the refusals changed nothing');
});

test('the token may not delete its workspace: not directly, not through remove_on_exit then stop, not through a TTL that removes', async () => {
  const before = await snapshot();
  assertRefused(await h.call('DELETE', `/workspace/${wsId}`, undefined, limited), 'destroy', 'delete');
  assertRefused(await h.call('PUT', `/workspace/${wsId}`, { config: { remove_on_exit: true } }, limited), 'destroy', 'remove_on_exit by update');
  assertRefused(await h.call('POST', `/workspace/${wsId}/lifecycle/temporary`, { ttl: '1h', remove_on_exit: true }, limited), 'destroy', 'remove_on_exit by makeTemporary');
  assertRefused(await h.call('PUT', `/workspace/${wsId}`, { config: { ttl: '1s', ttl_action: 'remove' } }, limited), 'destroy', 'ttl_action remove by update');
  assertRefused(await h.call('PUT', `/workspace/${wsId}/lifecycle/ttl`, { ttl: '1s', ttl_action: 'remove' }, limited), 'destroy', 'ttl_action remove by lifecycle');
  assert.equal(await snapshot(), before, 'the refusals changed nothing');

  // A stop is allowed (manage), and it is a stop: the workspace stays.
  const stopped = await h.call('POST', `/workspace/${wsId}/stop`, undefined, limited);
  assert.equal(stopped.status, 200);
  assert.equal(stopped.json.workspace.status, 'stopped');
  assert.ok(await h.service.byId(wsId));
  assert.equal((await h.call('POST', `/workspace/${wsId}/start`)).status, 200);
});

test('on a workspace the owner set to be removed, the token may not stop it, shorten its TTL or stop it by snapshot', async () => {
  const id = await h.workspace({ mode: 'temporary', config: { ttl: '1h', ttl_action: 'remove', remove_on_exit: true } });
  const token = await h.token({ scope: 'workspace', workspaceId: id, permissions: { runtime: false, destroy: false } });
  const ws = async () => { const w = await h.service.byId(id); return w ? JSON.stringify({ state: w.state, config: w.config, ttl: w.ttlExpiresAt }) : null; };
  const before = await ws();
  assertRefused(await h.call('POST', `/workspace/${id}/stop`, undefined, token), 'destroy', 'stop of a remove_on_exit workspace');
  assertRefused(await h.call('PUT', `/workspace/${id}/lifecycle/ttl`, { ttl: '1s' }, token), 'destroy', 'shorter TTL that removes');
  assertRefused(await h.call('PUT', `/workspace/${id}`, { config: { ttl: '1s' } }, token), 'destroy', 'shorter TTL by update');
  assertRefused(await h.call('POST', `/workspace/${id}/ping`, { ttl_seconds: 1 }, token), 'destroy', 'ping that moves the removal');
  assertRefused(await h.call('POST', `/workspace/${id}/snapshot`, { after: 'stop' }, token), 'destroy', 'snapshot then stop');
  assert.equal(await ws(), before, 'the refusals changed nothing');
  // The owner's key may: its stop removes, as remove_on_exit says.
  assert.equal((await h.call('POST', `/workspace/${id}/stop`)).json.deleted, true);
  assert.equal(await h.service.byId(id).then((w) => w?.state ?? null), null);
});

test('the token reads no secrets: env values redacted in every view, workload and workspace logs refused', async () => {
  const paths = [`/workspace/${wsId}`, `/workspace/${wsId}/config`, `/workspace/${wsId}/details`, `/workspace/${wsId}/workloads`, `/workspace/${wsId}/workloads/owner`, '/workspace'];
  for (const p of paths) {
    const r = await h.call('GET', p, undefined, limited);
    assert.equal(r.status, 200, `${p}: ${JSON.stringify(r.json)}`);
    assert.ok(!JSON.stringify(r.json).includes(SECRET), `${p} leaks the secret: ${JSON.stringify(r.json)}`);
  }
  const ws = (await h.call('GET', `/workspace/${wsId}`, undefined, limited)).json.workspace;
  assert.deepEqual(ws.config.env, [`API_KEY=${REDACTED}`, `PLAIN=${REDACTED}`], 'names stay, values go');
  const w = (await h.call('GET', `/workspace/${wsId}/workloads/owner`, undefined, limited)).json;
  assert.deepEqual(w.env, [`API_KEY=${REDACTED}`]);
  assert.equal(w.name, 'owner', 'the rest of the view is intact');
  const details = (await h.call('GET', `/workspace/${wsId}/details`, undefined, limited)).json;
  assert.ok(details.workloads.length >= 1 && details.workloads.every((x: any) => x.env.every((e: string) => e.endsWith(`=${REDACTED}`))));

  for (const p of [`/workspace/${wsId}/workloads/owner/logs`, `/workspace/${wsId}/workloads/owner/logs/stream`, `/workspace/${wsId}/logs?source=owner`, `/workspace/${wsId}/logs/list`, `/workspace/${wsId}/logs/stream/cmd`]) {
    assertRefused(await h.call('GET', p, undefined, limited), 'runtime', p);
  }

  // The admin key and a token with the runtime grant read it all, as before.
  assert.deepEqual((await h.call('GET', `/workspace/${wsId}`)).json.workspace.config.env, [`API_KEY=${SECRET}`, 'PLAIN=1']);
  const full = await h.token({ scope: 'workspace', workspaceId: wsId, permissions: { runtime: true } });
  assert.deepEqual((await h.call('GET', `/workspace/${wsId}/workloads/owner`, undefined, full)).json.env, [`API_KEY=${SECRET}`]);
  let logs: any[] = [];
  for (let i = 0; i < 50 && !logs.some((e) => e.data === `key is ${SECRET}`); i++) {
    logs = (await h.call('GET', `/workspace/${wsId}/workloads/owner/logs`, undefined, full)).json.logs;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(logs.some((e) => e.data === `key is ${SECRET}`), 'the runtime grant reads the logs');
});
