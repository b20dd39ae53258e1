/**
 * The SSH gateway against the real OpenSSH client (ssh, scp, sftp, ssh -L,
 * ProxyJump) and sshpass, non-interactively, with keys made by ssh-keygen
 * and a throwaway known_hosts; SSH configured through the official SDK.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Oblien } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { WORKSPACE_SERVER_JS, freePort } from '../helpers/public-plane.ts';

let h: HearthInstance;
let client: Oblien;
let sshPort: number;
let dir: string;
let ws: Record<string, any>;
let key: string;
let password: string;

interface Run { code: number | null; stdout: string; stderr: string }

function run(cmd: string, args: string[], input?: string | Buffer, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
    p.stdin.end(input);
  });
}

const common = () => ['-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=accept-new',
  '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10'];
const sshArgs = (keyFile = key) => ['-p', String(sshPort), '-i', keyFile, '-o', 'IdentitiesOnly=yes', ...common()];
const target = () => `${ws.id}@127.0.0.1`;

before(async () => {
  if (needsRoot) return;
  dir = await fs.mkdtemp('/tmp/hearth-ssh-test-');
  h = await startHearth({ extraArgs: ['--ssh-listen', '127.0.0.1:0', '--edge-listen', 'off', '--edge-tls-listen', 'off'] });
  const ep = JSON.parse(await fs.readFile(path.join(h.dataDir, 'endpoints.json'), 'utf8'));
  sshPort = Number(new URL(ep.ssh).port);
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  key = path.join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key, '-C', 'hearth-test']);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'wrong'), '-C', 'wrong']);
  ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
});

after(async () => {
  if (h) await h.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('SDK: ssh status, enable (shows a password once), setKey, setPassword', { skip: needsRoot }, async () => {
  const before = await client.workspaces.ssh.status(ws.id) as Record<string, any>;
  assert.equal(before.ssh_enabled, false);
  assert.equal(before.connection, null);
  // Disabled: even the right credentials are refused.
  const refused = await run('ssh', [...sshArgs(), target(), 'true']);
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /Permission denied/);

  const enabled = await client.workspaces.ssh.enable(ws.id) as Record<string, any>;
  assert.equal(enabled.ssh_enabled, true);
  assert.match(enabled.ssh_password, /^[A-Za-z0-9_-]{20,}$/);
  password = enabled.ssh_password;
  await client.workspaces.ssh.setKey(ws.id, { public_key: await fs.readFile(`${key}.pub`, 'utf8') });
  const st = await client.workspaces.ssh.status(ws.id) as Record<string, any>;
  assert.equal(st.ssh_password, undefined, 'status never returns the password');
  assert.deepEqual(st.auth_methods.sort(), ['password', 'publickey']);
  assert.equal(st.connection.user, ws.id);
  assert.equal(st.connection.command, `ssh -p ${sshPort} ${ws.id}@127.0.0.1`);
  assert.equal(st.connection.command.split(/\s+/)[0], 'ssh', 'the CLI runs connection.command only when it starts with ssh');
  await assert.rejects(client.workspaces.ssh.setKey(ws.id, { public_key: 'not a key' }), (e: any) => e.status === 400);
  await assert.rejects(client.workspaces.ssh.setPassword(ws.id, { password: 'short' }), (e: any) => e.status === 400);
});

test('exec with exit status, stderr and stdin; a wrong key is refused', { skip: needsRoot }, async () => {
  const r = await run('ssh', [...sshArgs(), target(), 'echo hello; echo oops >&2; hostname; exit 7']);
  assert.equal(r.code, 7, r.stderr);
  assert.equal(r.stdout.split('\n')[0], 'hello');
  assert.match(r.stderr, /oops/);
  const piped = await run('ssh', [...sshArgs(), target(), 'wc -c'], randomBytes(300_000));
  assert.equal(piped.stdout.trim(), '300000', 'stdin reaches the command in full, then EOF');
  const wrong = await run('ssh', [...sshArgs(path.join(dir, 'wrong')), target(), 'true']);
  assert.equal(wrong.code, 255);
  assert.match(wrong.stderr, /Permission denied/);
  const nobody = await run('ssh', [...sshArgs(), 'ws_doesnotexist@127.0.0.1', 'true']);
  assert.equal(nobody.code, 255);
});

test('an interactive shell with a PTY (ssh -tt, commands piped)', { skip: needsRoot }, async () => {
  const r = await run('ssh', ['-tt', ...sshArgs(), target()], 'echo in-pty-$((6*7)); tty; stty size; exit 3\n');
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.match(r.stdout, /in-pty-42/);
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  const exec = await run('ssh', ['-tt', ...sshArgs(), target(), 'test -t 0 && echo has-tty']);
  assert.match(exec.stdout, /has-tty/);
  assert.equal(exec.code, 0);
});

test('password login (sshpass)', { skip: needsRoot }, async () => {
  const r = await run('sshpass', ['-p', password, 'ssh', '-p', String(sshPort), '-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no',
    '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=accept-new', '-o', 'LogLevel=ERROR', target(), 'echo via-password']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'via-password');
  const bad = await run('sshpass', ['-p', 'wrong-password', 'ssh', '-p', String(sshPort), '-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no',
    '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`, '-o', 'NumberOfPasswordPrompts=1', '-o', 'LogLevel=ERROR', target(), 'true']);
  assert.notEqual(bad.code, 0);
});

test('scp and sftp copy files both ways, byte for byte', { skip: needsRoot, timeout: 120_000 }, async () => {
  const local = path.join(dir, 'blob.bin');
  const data = randomBytes(3 * 1024 * 1024 + 123);
  await fs.writeFile(local, data);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const up = await run('scp', ['-P', String(sshPort), '-i', key, '-o', 'IdentitiesOnly=yes', ...common(), local, `${target()}:/tmp/blob.bin`], undefined, 60_000);
  assert.equal(up.code, 0, up.stderr);
  const inside = await run('ssh', [...sshArgs(), target(), 'sha256sum /tmp/blob.bin']);
  assert.equal(inside.stdout.split(' ')[0], sha(data));
  const back = path.join(dir, 'back.bin');
  const down = await run('scp', ['-P', String(sshPort), '-i', key, '-o', 'IdentitiesOnly=yes', ...common(), `${target()}:/tmp/blob.bin`, back], undefined, 60_000);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(sha(await fs.readFile(back)), sha(data));

  const batch = path.join(dir, 'batch');
  await fs.writeFile(batch, [`mkdir /tmp/sftp-dir`, `put ${local} /tmp/sftp-dir/a.bin`, `rename /tmp/sftp-dir/a.bin /tmp/sftp-dir/b.bin`,
    `chmod 600 /tmp/sftp-dir/b.bin`, `ls -l /tmp/sftp-dir`, `get /tmp/sftp-dir/b.bin ${path.join(dir, 'sftp-back.bin')}`, 'cd /tmp/sftp-dir', 'pwd'].join('\n') + '\n');
  const s = await run('sftp', ['-P', String(sshPort), '-i', key, '-o', 'IdentitiesOnly=yes', ...common(), '-b', batch, target()], undefined, 60_000);
  assert.equal(s.code, 0, s.stderr + s.stdout);
  assert.match(s.stdout, /-rw------- .* b\.bin/);
  assert.match(s.stdout, /Remote working directory: \/tmp\/sftp-dir/);
  assert.equal(sha(await fs.readFile(path.join(dir, 'sftp-back.bin'))), sha(data));
  const missing = await run('sftp', ['-P', String(sshPort), '-i', key, '-o', 'IdentitiesOnly=yes', ...common(), '-b', '-', target()], 'get /nonexistent/file /tmp/x\n');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No such file|not found/i);
});

test('ssh -L forwards a local port to a server in the workspace; ProxyJump reaches the workspace through the gateway', { skip: needsRoot, timeout: 60_000 }, async () => {
  const start = await run('ssh', [...sshArgs(), target(), `cat > /tmp/srv.js && (PORT=3000 nohup node /tmp/srv.js >/tmp/srv.log 2>&1 &) && sleep 0.5 && cat /tmp/srv.log`], WORKSPACE_SERVER_JS);
  assert.equal(start.code, 0, start.stderr);
  const lport = await freePort();
  const fwd: ChildProcess = spawn('ssh', [...sshArgs(), '-N', '-o', 'ExitOnForwardFailure=yes', '-L', `127.0.0.1:${lport}:localhost:3000`, target()], { stdio: 'ignore' });
  try {
    const body = await waitUntil('the forwarded port', () => new Promise<string | false>((resolve) => {
      http.get({ host: '127.0.0.1', port: lport, path: '/' }, (res) => { let b = ''; res.on('data', (c) => { b += c; }); res.on('end', () => resolve(b)); })
        .on('error', () => resolve(false));
    }), 20_000, 200);
    assert.match(body, /hello from .* port 3000/);
  } finally {
    fwd.kill('SIGTERM');
  }
  // A forward to anything but the workspace itself is refused.
  const lport2 = await freePort();
  const other = spawn('ssh', [...sshArgs(), '-N', '-L', `127.0.0.1:${lport2}:10.0.0.1:80`, target()], { stdio: 'ignore' });
  try {
    await waitUntil('the second forward to listen', () => new Promise<boolean>((resolve) => {
      const s = http.get({ host: '127.0.0.1', port: lport2, path: '/' }, () => resolve(false));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNRESET' || e.message.includes('socket hang up')));
    }), 20_000, 200);
  } finally {
    other.kill('SIGTERM');
  }
  // The contract's connection: ProxyJump <user>@<bastion> then <user>@<host>.
  const st = await client.workspaces.ssh.status(ws.id) as Record<string, any>;
  // The jump's own ssh reads only the config file (-F is passed on), not -o options: say it all there.
  const config = path.join(dir, 'ssh_config');
  await fs.writeFile(config, ['Host *', `  IdentityFile ${key}`, '  IdentitiesOnly yes', '  BatchMode yes', `  UserKnownHostsFile ${path.join(dir, 'known_hosts')}`,
    '  StrictHostKeyChecking accept-new', '  LogLevel ERROR', ''].join('\n'));
  const jumped = await run('ssh', ['-F', config, '-J', `${st.connection.user}@${st.connection.bastion}`, `${st.connection.user}@${st.connection.host}`, 'echo jumped']);
  assert.equal(jumped.code, 0, jumped.stderr);
  assert.equal(jumped.stdout.trim(), 'jumped');
});

test('disabling SSH closes open sessions and refuses new ones', { skip: needsRoot, timeout: 60_000 }, async () => {
  const long = spawn('ssh', [...sshArgs(), target(), 'sleep 60'], { stdio: 'ignore' });
  const closed = new Promise<number | null>((r) => long.on('close', (code) => r(code)));
  await new Promise((r) => setTimeout(r, 1500));
  await client.workspaces.ssh.disable(ws.id);
  const t0 = Date.now();
  await closed;
  assert.ok(Date.now() - t0 < 5000, 'the open session ended when SSH was disabled');
  const r = await run('ssh', [...sshArgs(), target(), 'true']);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /Permission denied/);
});

test('after a hearthd crash and restart: the same host key, and SSH works again', { skip: needsRoot, timeout: 90_000 }, async () => {
  await client.workspaces.ssh.enable(ws.id);
  const scan = async () => (await run('ssh-keyscan', ['-t', 'ed25519', '-p', String(sshPort), '127.0.0.1'])).stdout.trim().split(' ').slice(1).join(' ');
  const before = await scan();
  assert.match(before, /^ssh-ed25519 AAAA/);
  await h.crashAndRestart();
  const ep = JSON.parse(await fs.readFile(path.join(h.dataDir, 'endpoints.json'), 'utf8'));
  sshPort = Number(new URL(ep.ssh).port);
  assert.equal(await scan(), before, 'the host key lives in the data dir');
  const r = await run('ssh', [...sshArgs(), target(), 'echo back']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'back');
});
