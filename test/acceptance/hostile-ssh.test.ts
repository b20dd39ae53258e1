/**
 * The SSH gateway against someone guessing (issue 13, attacks on SSH auth):
 * a real `hearth serve` with its gateway on loopback, attacked with the ssh2
 * client. Its own server, so the failure budget this file spends on
 * 127.0.0.1 does not touch other tests.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import ssh2 from 'ssh2';
import { Oblien } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

let h: HearthInstance;
let client: Oblien;
let port: number;
const ws: Record<'keyOnly' | 'both' | 'off', string> = {} as never;
let password = '';

interface Outcome { ok: boolean; tries: number; offered: string[][]; closedByServer: boolean }

/** Log in as `user` trying each password in turn (at most `max`), recording what the server offers after each refusal. */
function attempt(user: string, passwords: string[], max = passwords.length): Promise<Outcome> {
  return new Promise((resolve) => {
    const c = new ssh2.Client();
    const out: Outcome = { ok: false, tries: 0, offered: [], closedByServer: false };
    let i = 0;
    let ended = false;
    c.on('ready', () => { out.ok = true; ended = true; c.end(); });
    c.on('error', () => { /* auth failures end here */ });
    c.on('close', () => { if (!ended) out.closedByServer = true; resolve(out); });
    c.connect({
      host: '127.0.0.1', port, username: user, readyTimeout: 20_000,
      authHandler: (methodsLeft: string[] | null, _partial: boolean | null, next: (m: unknown) => void) => {
        if (methodsLeft) out.offered.push([...methodsLeft].sort());
        if (i >= max || i >= passwords.length) { ended = true; next(false); return; }
        out.tries++;
        next({ type: 'password', username: user, password: passwords[i++] });
      },
    } as never);
  });
}

before(async () => {
  if (needsRoot) return;
  h = await startHearth({ extraArgs: ['--ssh-listen', '127.0.0.1:0', '--edge-listen', 'off', '--edge-tls-listen', 'off'] });
  const ep = JSON.parse(await fs.readFile(path.join(h.dataDir, 'endpoints.json'), 'utf8'));
  port = Number(new URL(ep.ssh).port);
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  for (const k of ['keyOnly', 'both', 'off'] as const) ws[k] = ((await client.workspaces.create({ image: 'debian-12', config: { ttl: '15m' } } as never)) as { id: string }).id;
  password = ((await client.workspaces.ssh.enable(ws.both)) as unknown as { ssh_password: string }).ssh_password;
  // A key before enabling: no password is minted, so this workspace takes keys only.
  await client.workspaces.ssh.setKey(ws.keyOnly, { public_key: ssh2.utils.generateKeyPairSync('ed25519').public });
  await client.workspaces.ssh.enable(ws.keyOnly);
  assert.deepEqual(((await client.workspaces.ssh.status(ws.keyOnly)) as unknown as { auth_methods: string[] }).auth_methods, ['publickey']);
});

after(async () => {
  if (h) await h.stop();
});

const skip = needsRoot;

test('a refusal offers the same methods whatever the workspace has set up, or whether it exists', { skip }, async () => {
  const offered = await Promise.all([ws.keyOnly, ws.both, ws.off, 'no-such-workspace'].map(async (u) => (await attempt(u, ['wrong-password-1'])).offered));
  for (const o of offered) assert.deepEqual(o.at(-1), ['password', 'publickey'], `offered ${JSON.stringify(offered)}`);
});

test('a connection is closed after six failed passwords: the seventh guess is never checked', { skip }, async () => {
  // The seventh and later guesses are the right password: were any of them checked, the login would succeed.
  const r = await attempt(ws.both, [...Array.from({ length: 6 }, (_, i) => `guess-${i}`), password, password, password]);
  assert.equal(r.ok, false, 'the right password after six failures is not accepted on that connection');
  assert.ok(r.tries >= 6 && r.tries < 9, `tries ${r.tries}`);
  assert.ok(r.closedByServer, 'the server closed the connection');
  assert.equal((await attempt(ws.both, [password])).ok, true, 'the right password still works on a new connection');
});

test('an address that spent its failure budget is refused, even with the right password', { skip }, async () => {
  // 4 failures of the first test, 6 of the second, then 3 connections x 6 = 28 > the budget of 20.
  for (let i = 0; i < 3; i++) await attempt(ws.both, Array.from({ length: 6 }, (_, j) => `spray-${i}-${j}`));
  const r = await attempt(ws.both, [password, password, password]);
  assert.equal(r.ok, false, 'guessing from this address is paused');
  assert.ok(r.closedByServer, 'the server closed the connection');
});
