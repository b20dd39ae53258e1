/**
 * The SSH gateway's host key: always one ssh2 can read (its own generator
 * makes a malformed ed25519 key about once in 256 draws), persisted across
 * starts, and an unreadable stored key replaced rather than fatal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { generateHostKey, loadHostKey } from '../../src/ssh/server.ts';

test('generated host keys always parse (2000 draws would hit the ssh2 bug ~8 times unguarded)', () => {
  for (let i = 0; i < 2000; i++) {
    const pair = generateHostKey();
    const priv = ssh2.utils.parseKey(pair.private);
    assert.ok(!(priv instanceof Error), `draw ${i}: ${(priv as Error).message}`);
    assert.ok(!(ssh2.utils.parseKey(pair.public) instanceof Error), `draw ${i}: public key`);
  }
});

test('the host key is created once, kept across starts, and an unreadable one is replaced', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-hostkey-'));
  try {
    const first = await loadHostKey(dir);
    assert.equal((await fs.stat(path.join(dir, 'ssh', 'host_ed25519'))).mode & 0o777, 0o600);
    assert.deepEqual(await loadHostKey(dir), first, 'a second start reads the same key');
    const broken = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
    await fs.writeFile(path.join(dir, 'ssh', 'host_ed25519'), broken);
    const warnings: string[] = [];
    const replaced = await loadHostKey(dir, { warn: (_o: unknown, msg: string) => warnings.push(msg) } as never);
    assert.ok(!(ssh2.utils.parseKey(replaced) instanceof Error));
    assert.notDeepEqual(replaced, first);
    assert.equal(await fs.readFile(path.join(dir, 'ssh', 'host_ed25519.bad'), 'utf8'), broken);
    assert.match(warnings.join('\n'), /unreadable/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
