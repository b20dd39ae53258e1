/**
 * Workspaces outlive hearthd: a kill -9 of hearthd leaves them running and the
 * restarted hearthd adopts them; a permanent workspace's files survive
 * stop/start; a restart removes what is provably its own but unknown to the
 * store, and nothing else.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { runDirFor } from '../../src/host/local-host.ts';
import { needsRoot } from '../helpers/root.ts';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

let h: HearthInstance;
let client: Oblien;

before(async () => {
  if (needsRoot) return;
  // Pools off: this file counts bridge ports and runc containers: no warm pool adds its own (warm-pool-sdk.test.ts covers a pool across a kill -9).
  h = await startHearth({ extraArgs: ['--warm-pool', '0'] });
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

test('files of a permanent workspace survive stop and start', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as Record<string, any>;
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.files.write({ fullPath: '/root/notes/keep.txt', content: 'still here' });
  const stopped = await client.workspaces.stop(ws.id) as Record<string, any>;
  assert.equal(stopped.workspace.status, 'stopped');
  await assert.rejects(rt.exec.run(['true']), /stopped/);
  const started = await client.workspaces.start(ws.id) as Record<string, any>;
  assert.equal(started.workspace.status, 'running');
  assert.equal(started.workspace.info.internal_ip, ws.info.internal_ip, 'the internal IP is stable');
  assert.equal((await rt.files.read({ filePath: '/root/notes/keep.txt' })).content, 'still here');
  await client.workspaces.delete(ws.id);
});

test('kill -9 of hearthd: running workspaces keep running and are adopted after restart', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as Record<string, any>;
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.exec.run(['sh', '-c', 'sleep 1000 >/dev/null 2>&1 & echo $! > /tmp/sleeper.pid']);
  const pidBefore = (await rt.files.read({ filePath: '/tmp/sleeper.pid' })).content.trim();
  await h.crashAndRestart();
  const got = await client.workspaces.get(ws.id) as Record<string, any>;
  assert.equal(got.status, 'running');
  // Same process still alive: the sandbox was adopted, not restarted; the old token still works.
  const r = await rt.exec.run(['sh', '-c', `kill -0 ${pidBefore} && echo alive`]);
  assert.equal(r.stdout, 'alive\n');
  assert.ok(h.logs.join('').includes('"adopted":1'), 'the reconcile summary reports the adoption');
  await client.workspaces.delete(ws.id);
});

test('restart on a store that lost a workspace: its sandbox, directory and bridge port are removed; what is not provably ours stays', { skip: needsRoot }, async () => {
  const lost = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as Record<string, any>;
  const kept = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as Record<string, any>;
  const ports = () => bridgePorts(h.bridge);
  const before = ports();
  assert.equal(before.length, 2, before.join(' '));
  // Not provably ours: a link with our prefix that is no port of our bridge. Ours: a bridge port of a slot nobody holds.
  const foreign = `${h.linkPrefix}999`;
  const stray = `${h.linkPrefix}200`;
  const runDir = runDirFor(h.dataDir);
  try {
    await h.crashAndRestart(async () => {
      // A store restored from an older backup: it never heard of `lost`.
      const db = new Database(path.join(h.dataDir, 'hearth.db'));
      db.pragma('foreign_keys = ON');
      db.prepare('DELETE FROM workspaces WHERE id = ?').run(lost.id);
      db.close();
      // veth pairs (this kernel has no dummy links); the peers' names match no slot.
      execFileSync('ip', ['link', 'add', foreign, 'type', 'veth', 'peer', 'name', `${foreign}p`]);
      execFileSync('ip', ['link', 'add', stray, 'type', 'veth', 'peer', 'name', `${stray}p`]);
      execFileSync('ip', ['link', 'set', stray, 'master', h.bridge]);
    });
    const gotKept = await client.workspaces.get(kept.id) as Record<string, any>;
    assert.equal(gotKept.status, 'running');
    await assert.rejects(client.workspaces.get(lost.id), (e: any) => e.status === 404);
    const after = ports();
    assert.equal(after.length, 1, `only the kept workspace's port is left: ${after.join(' ')}`);
    assert.ok(before.includes(after[0]!));
    assert.ok(!fs.existsSync(path.join(h.dataDir, 'workspaces', lost.id)), 'the lost workspace directory is gone');
    assert.ok(fs.existsSync(path.join(h.dataDir, 'workspaces', kept.id)));
    const runc = execFileSync('runc', ['--root', path.join(runDir, 'runc'), 'list', '-q'], { encoding: 'utf8' });
    assert.doesNotMatch(runc, new RegExp(lost.id), 'the lost sandbox is no longer a runc container');
    assert.match(runc, new RegExp(kept.id));
    assert.ok(linkExists(foreign), 'a link that is not a port of our bridge is not touched');
    assert.ok(!linkExists(stray), 'a bridge port of no workspace is removed');
    assert.match(h.logs.join(''), /"orphans_removed":3/, 'one sandbox, its port and the stray port');
    const { token } = await client.workspaces.apiAccess.enable(kept.id) as { token: string };
    assert.equal((await new Runtime({ token, baseUrl: h.runtime }).exec.run(['echo', 'ok'])).stdout, 'ok\n');
  } finally {
    for (const l of [foreign, stray]) if (linkExists(l)) execFileSync('ip', ['link', 'del', l]);
    await client.workspaces.delete(kept.id);
  }
});

function bridgePorts(bridge: string): string[] {
  return (JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'master', bridge], { encoding: 'utf8' }) || '[]') as { ifname: string }[]).map((l) => l.ifname).sort();
}

function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', name], { stdio: 'ignore' }).status === 0;
}
