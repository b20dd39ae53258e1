/**
 * The shipped form of the agent: bundleAgent() → one agent.mjs run by plain
 * `node`, configured by HEARTH_* env, which it must not pass on to children.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { bundleAgent } from '../../src/agent/bundle.ts';
import { withTempDir, WsRecorder } from '../helpers/agent-harness.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let child: ChildProcess | undefined;
before(async () => { tmp = await withTempDir(); });
after(async () => {
  child?.kill('SIGKILL');
  await tmp.cleanup();
});

function waitForListening(proc: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`agent did not start: ${err}`)), 10_000);
    proc.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /"msg":"listening","url":"([^"]+)"/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    proc.on('exit', (code) => reject(new Error(`agent exited ${code}: ${err}`)));
  });
}

test('bundled agent.mjs starts, authenticates, serves, and scrubs HEARTH_* from children', async () => {
  const out = `${tmp.dir}/agent.mjs`;
  await bundleAgent(out);
  const text = await readFile(out, 'utf8');
  await stat(`${tmp.dir}/node_modules/@lydell/node-pty/package.json`);
  await stat(`${tmp.dir}/node_modules/@lydell/node-pty-linux-x64/pty.node`);
  assert.ok(!/from\s*["']\.\.?\//.test(text), 'no relative imports left: one self-contained file');

  const secret = 'bundle-test-secret';
  child = spawn(process.execPath, [out], {
    // Run from elsewhere: module resolution must start at agent.mjs, not the cwd or the repo.
    cwd: '/',
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HEARTH_AGENT_SECRET: secret,
      HEARTH_AGENT_PORT: '0',
      HEARTH_AGENT_HOST: '127.0.0.1',
      HEARTH_WORKSPACE_ID: 'ws_bundle',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await waitForListening(child);
  const auth = { authorization: `Bearer ${secret}` };

  const health = await (await fetch(`${url}/health`, { headers: auth })).json() as Record<string, unknown>;
  assert.equal(health.status, 'ok');
  assert.equal(health.workspace_id, 'ws_bundle');
  assert.equal((await fetch(`${url}/health`)).status, 401);

  const run = await (await fetch(`${url}/exec`, {
    method: 'POST', headers: auth, body: JSON.stringify({ cmd: ['sh', '-c', 'env; echo "[$HEARTH_AGENT_SECRET]"'] }),
  })).json() as { stdout: string };
  assert.ok(!run.stdout.includes('HEARTH_'), 'no HEARTH_* variable reaches a child');
  assert.ok(!run.stdout.includes(secret), 'the secret never reaches a child');
  assert.match(run.stdout, /^\[\]$/m);

  // The PTY addon loads from node_modules/ beside agent.mjs (not from the repo).
  const term = await (await fetch(`${url}/terminals`, { method: 'POST', headers: auth, body: JSON.stringify({ cmd: ['/bin/sh'] }) })).json() as { id: string; alive: boolean };
  assert.equal(term.alive, true, JSON.stringify(term));
  const rec = await WsRecorder.open(`${url.replace('http', 'ws')}/ws?token=${secret}`);
  rec.ws.send(Buffer.concat([Buffer.from([Number(term.id)]), Buffer.from("echo bun''dled-pty\n")]));
  await rec.waitFor(() => rec.terminalOutput(Number(term.id)).includes('bundled-pty'), 'pty output from the bundle');
  rec.close();

  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => child?.once('exit', (c) => r(c)));
  assert.equal(code, 0, 'SIGTERM is a clean shutdown');
  child = undefined;
});

test('missing HEARTH_AGENT_SECRET: exits 2 with a message', async () => {
  const out = `${tmp.dir}/agent.mjs`;
  const proc = spawn(process.execPath, [out], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  assert.equal(code, 2);
  assert.match(err, /HEARTH_AGENT_SECRET is required/);
});
