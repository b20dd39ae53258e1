/**
 * The in-workspace SFTP server, bundled exactly as the gateway ships it and
 * driven by OpenSSH's own `sftp` client over stdin/stdout (`sftp -D`), no
 * SSH or workspace involved: the protocol, binary integrity, errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sftpServerSource } from '../../src/ssh/server.ts';
import { SFTP_MAIN_FLAG } from '../../src/ssh/guest/sftp-server.ts';

let dir: string;
let server: string;
const hasSftp = spawnSync('sftp', ['-V']).status !== null;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sftp-unit-'));
  server = path.join(dir, 'server.js');
  await fs.writeFile(server, await sftpServerSource());
});
after(async () => { await fs.rm(dir, { recursive: true, force: true }); });

function sftp(batch: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync('sftp', ['-D', `${process.execPath} ${server} ${SFTP_MAIN_FLAG}`, '-b', '-'], { input: batch.join('\n') + '\n', encoding: 'utf8', cwd: dir, env: { ...process.env, HOME: dir } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('the bundle is self-contained CommonJS of a few KiB', async () => {
  const src = await sftpServerSource();
  assert.ok(src.length < 32 * 1024, `${src.length} bytes`);
  assert.doesNotMatch(src, /require\("(?!node:|fs|path)/, 'only node built-ins');
});

test('put, get, rename, chmod, symlink, mkdir/rmdir, ls — byte for byte', { skip: hasSftp ? false : 'no sftp client' }, async () => {
  const data = randomBytes(1024 * 1024 + 7);
  await fs.writeFile(path.join(dir, 'src.bin'), data);
  const r = sftp([
    'mkdir d', 'put src.bin d/a.bin', 'rename d/a.bin d/b.bin', 'chmod 640 d/b.bin', 'symlink b.bin d/link', 'ls -l d',
    'get d/b.bin back.bin', 'pwd', 'rm d/link', 'rm d/b.bin', 'rmdir d',
  ]);
  assert.equal(r.code, 0, r.err + r.out);
  assert.match(r.out, /-rw-r----- .* b\.bin/);
  assert.match(r.out, /lrwxrwxrwx .* link/);
  assert.match(r.out, new RegExp(`Remote working directory: ${dir}`));
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(await fs.readFile(path.join(dir, 'back.bin'))), sha(data));
  await assert.rejects(fs.stat(path.join(dir, 'd')));
});

test('errors come back as SFTP statuses the client understands', { skip: hasSftp ? false : 'no sftp client' }, () => {
  const missing = sftp(['get /nonexistent/x y']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.err, /No such file|not found/i);
  const notEmpty = sftp(['mkdir e', 'put /etc/hostname e/f', 'rmdir e']);
  assert.notEqual(notEmpty.code, 0);
  assert.match(notEmpty.err, /Failure|not empty/i);
});
