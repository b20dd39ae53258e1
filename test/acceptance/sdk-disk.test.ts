/**
 * disk_size_mb through the official SDK and a real `hearth serve` (container
 * driver): the kernel enforces it inside, `df /` shows it, raising it grows
 * the disk (online where the host allows, else at the next start) and
 * lowering it is refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { leftovers } from '../helpers/leaks.ts';

let h: HearthInstance;
let client: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

async function put(id: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${h.api}/workspace/${id}`, {
    method: 'PUT', body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret },
  });
  return { status: res.status, json: await res.json() as Record<string, unknown> };
}

test('disk_size_mb is a real limit: ENOSPC past it, df shows it, it grows on update and never shrinks', { skip: needsRoot }, async (t) => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent', config: { disk_size_mb: 300 } } as never) as Record<string, any>;
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  const dfMb = async () => Number((await rt.exec.run(['sh', '-c', 'df -k / | tail -n 1'])).stdout!.trim().split(/\s+/)[1]) / 1024;
  const total = await dfMb();
  assert.ok(total > 240 && total <= 300, `df / inside: ${total} MiB`);
  const statfs = () => { const f = fs.statfsSync(h.dataDir); return (f.blocks - f.bfree) * f.bsize; };
  const before = statfs();
  const dd = await rt.exec.run(['sh', '-c', 'dd if=/dev/zero of=/root/big bs=1M count=600 2>&1; sync'], { timeoutSeconds: 120 } as never);
  assert.match(dd.stdout!, /No space left on device/);
  const grew = statfs() - before;
  t.diagnostic(`df ${total.toFixed(0)} MiB; data dir grew by ${(grew / 1048576).toFixed(0)} MiB writing 600 MB into a 300 MB disk`);
  assert.ok(grew <= 340 * 1048576, `the data dir's file system grew by at most about the limit (${grew})`);

  const shrink = await put(ws.id, { config: { disk_size_mb: 256 } });
  assert.equal(shrink.status, 400);
  assert.match(String(shrink.json.message), /cannot shrink/);
  const grow = await put(ws.id, { config: { disk_size_mb: 512 } });
  assert.equal(grow.status, 200, JSON.stringify(grow.json));
  if ((await dfMb()) < 450) {
    // No online resize on this host (hearthd lacks CAP_SYS_RESOURCE): the growth is done at the next start.
    await client.workspaces.stop(ws.id);
    await client.workspaces.start(ws.id);
  }
  const grown = await dfMb();
  assert.ok(grown > 450 && grown <= 512, `df / after raising disk_size_mb to 512: ${grown} MiB`);
  assert.equal((await rt.exec.run(['sh', '-c', 'rm /root/big; dd if=/dev/zero of=/root/more bs=1M count=300 2>&1'])).exit_code, 0);
  await client.workspaces.delete(ws.id);
  assert.deepEqual(await leftovers({ dataDir: h.dataDir, linkPrefix: h.linkPrefix, bridge: h.bridge }), []);
});
