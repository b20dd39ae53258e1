/**
 * The official `oblien` CLI binary against a real `hearth serve` after the
 * one-line setup `eval "$(hearth env)"`: every `oblien ws …` subcommand,
 * and a seed flow that also drives the data plane (exec, files) with no
 * other configuration. Every command runs in a clean HOME (no stored
 * credentials), so only what `hearth env` printed points it here.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');
const oblien = path.join(repo, 'node_modules', '.bin', 'oblien');
let h: HearthInstance;
let home: string;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-cli-home-'));
});
after(async () => {
  if (h) await h.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

/** `eval "$(hearth env)"; oblien ARGS…` in bash, in an environment with no OBLIEN_* or NODE_OPTIONS of its own. */
function sh(args: string[]): { code: number; out: string; err: string } {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home };
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `set -e; eval "$(node ${path.join(repo, 'bin/hearth.mjs')} env --data-dir '${h.dataDir}')"; ${oblien} ${quoted}`;
  const r = spawnSync('bash', ['-c', script], { env, encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function json(args: string[]): Record<string, any> {
  const r = sh([...args, '--json']);
  assert.equal(r.code, 0, `oblien ${args.join(' ')}: exit ${r.code}\n${r.out}\n${r.err}`);
  return JSON.parse(r.out) as Record<string, any>;
}

test('hearth env prints the exports, quoted, with the preload and the admin key', { skip: needsRoot }, () => {
  const r = spawnSync('node', [path.join(repo, 'bin/hearth.mjs'), 'env', '--data-dir', h.dataDir], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const names = lines.map((l) => /^export ([A-Z_]+)=/.exec(l)?.[1]).sort();
  assert.deepEqual(names, ['HEARTH_RUNTIME_URL', 'NODE_OPTIONS', 'OBLIEN_BASE_URL', 'OBLIEN_CLIENT_ID', 'OBLIEN_CLIENT_SECRET']);
  assert.ok(lines.includes(`export OBLIEN_BASE_URL='${h.api}'`));
  assert.ok(lines.some((l) => l.includes('sdk/preload.mjs')));
});

test('every oblien ws subcommand, then a seed flow through the data plane, after eval "$(hearth env)"', { skip: needsRoot }, async () => {
  const created = json(['ws', 'create', '--image', 'debian-12', '--name', 'cli-seed', '--cpus', '1', '--memory', '256', '--disk', '512', '--mode', 'permanent']);
  const id = (created.workspace?.id ?? created.id) as string;
  assert.match(id, /^ws_/, JSON.stringify(created));

  const listed = json(['ws', 'list']);
  assert.ok(JSON.stringify(listed).includes(id));
  assert.equal((json(['ws', 'ls', '--status', 'running'])).success ?? true, true);
  const got = json(['ws', 'get', id]);
  assert.equal((got.workspace ?? got).name, 'cli-seed');
  assert.equal(sh(['ws', 'update', id, '--name', 'cli-seed-2']).code, 0);
  assert.equal((json(['ws', 'get', id]).workspace ?? json(['ws', 'get', id])).name, 'cli-seed-2', 'update was honoured');

  const res = json(['ws', 'resources', id, '--memory', '384']);
  assert.equal(res.updated?.memory_mb, 384, JSON.stringify(res));
  const patched = json(['ws', 'resources', id, '--cpus', '2', '--patch']);
  assert.equal(patched.updated?.cpus, 2);
  assert.equal(json(['ws', 'resources', id]).memory_mb, 384);

  assert.ok(json(['ws', 'details', id]).workspace);
  assert.equal(json(['ws', 'health', id]).healthy, true, 'the runtime health check reached the workspace through the preload');
  assert.ok(json(['ws', 'quota']));
  assert.ok(json(['ws', 'estimate', '--cpus', '1', '--memory', '512', '--disk', '1024']));
  assert.equal(sh(['ws', 'ping', id]).code, 0);

  // Data plane, through the preload `hearth env` put in NODE_OPTIONS.
  const ran = sh(['exec', id, '--', 'sh', '-c', 'echo seeded > /root/seed.txt && cat /root/seed.txt']);
  assert.equal(ran.code, 0, ran.err);
  assert.match(ran.out, /seeded/);

  for (const verb of ['pause', 'resume', 'restart', 'stop', 'start'] as const) {
    const r = sh(['ws', verb, id]);
    assert.equal(r.code, 0, `ws ${verb}: ${r.out}${r.err}`);
  }
  const after = sh(['exec', id, '--', 'cat', '/root/seed.txt']);
  assert.match(after.out, /seeded/, 'the seeded file survived stop and start');
  assert.equal(sh(['ws', 'delete', id]).code, 0);
  const gone = sh(['ws', 'get', id, '--json']);
  assert.notEqual(gone.code, 0);
});

test('oblien login --base-url completes its browser sign-in on hearthd\'s approval page, and the stored login drives the CLI', { skip: needsRoot }, async () => {
  const loginHome = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-cli-login-'));
  try {
    const { spawn } = await import('node:child_process');
    const env = { PATH: process.env.PATH ?? '', HOME: loginHome };
    const proc = spawn(oblien, ['login', '--base-url', h.api], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    proc.stderr.on('data', (c: Buffer) => { out += c.toString(); });
    const exited = new Promise<number>((f) => proc.on('exit', (code) => f(code ?? -1)));
    let url = '';
    for (let i = 0; i < 100 && !url; i++) { url = /(http:\/\/\S+\/auth\/approve\/login_[0-9a-f]+)/.exec(out)?.[1] ?? ''; if (!url) await new Promise((f) => setTimeout(f, 100)); }
    assert.ok(url, `the CLI printed the approval URL: ${out}`);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<form method="post"/);
    const wrong = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: h.clientId, client_secret: 'wrong' }).toString() });
    assert.equal(wrong.status, 401);
    const ok = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: h.clientId, client_secret: h.clientSecret }).toString() });
    assert.match(await ok.text(), /Signed in/);
    assert.equal(await exited, 0, out);
    assert.match(out, /Logged in/);
    const listed = spawnSync(oblien, ['ws', 'list', '--json'], { env, encoding: 'utf8' });
    assert.equal(listed.status, 0, listed.stderr);
    assert.ok(JSON.parse(listed.stdout).success);
  } finally {
    fs.rmSync(loginHome, { recursive: true, force: true });
  }
});
