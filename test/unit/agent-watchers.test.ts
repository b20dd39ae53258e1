/** Guest agent: recursive file watchers with events on the runtime WebSocket (spec §22.7, §22.9). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { startTestAgent, withTempDir, WsRecorder, type TestAgent } from '../helpers/agent-harness.ts';

let t: TestAgent;
let dir: string;
let cleanup: () => Promise<void>;
before(async () => {
  t = await startTestAgent();
  ({ dir, cleanup } = await withTempDir());
});
after(async () => {
  await t.close();
  await cleanup();
});

type Msg = Record<string, unknown>;

test('ready, create/write/remove events across the tree, new directories followed, excludes honoured', async () => {
  await mkdir(`${dir}/w/src/deep`, { recursive: true });
  await mkdir(`${dir}/w/node_modules/pkg`, { recursive: true });
  const rec = await WsRecorder.open(t.wsUrl());

  const created = await t.call('POST', '/watchers', { path: `${dir}/w`, excludes: ['node_modules'] });
  assert.equal(created.status, 200);
  const w = created.body.watcher as Msg;
  assert.equal(w.root, `${dir}/w`);
  assert.equal(w.dir_count, 3, 'root, src, src/deep — node_modules excluded');
  assert.deepEqual(w.excludes, ['node_modules']);
  assert.equal(w.active, true);
  const id = w.id as string;

  const ready = await rec.waitFor(() => rec.json().find((m) => m.type === 'ready' && m.watcher_id === id), 'ready');
  assert.deepEqual(ready, { channel: 'watcher', type: 'ready', watcher_id: id, root: `${dir}/w`, dirs: 3 });

  const changes = (): Msg[] => rec.json().filter((m) => m.type === 'change' && m.watcher_id === id);
  const seen = (path: string, op: string): Msg | undefined => changes().find((m) => m.path === path && m.op === op);

  await writeFile(`${dir}/w/src/deep/a.txt`, 'one');
  await rec.waitFor(() => seen(`${dir}/w/src/deep/a.txt`, 'create'), 'create in a nested dir');
  await new Promise((r) => setTimeout(r, 100)); // let the create window close
  await writeFile(`${dir}/w/src/deep/a.txt`, 'two');
  await rec.waitFor(() => seen(`${dir}/w/src/deep/a.txt`, 'write'), 'write');

  // A directory created after the watch started is followed too.
  await mkdir(`${dir}/w/late`);
  await rec.waitFor(() => seen(`${dir}/w/late`, 'create'), 'new dir create');
  await new Promise((r) => setTimeout(r, 100));
  await writeFile(`${dir}/w/late/b.txt`, 'b');
  await rec.waitFor(() => seen(`${dir}/w/late/b.txt`, 'create'), 'create inside the new dir');

  await rm(`${dir}/w/src/deep/a.txt`);
  await rec.waitFor(() => seen(`${dir}/w/src/deep/a.txt`, 'remove'), 'remove');

  // Excluded tree: no events at all.
  await writeFile(`${dir}/w/node_modules/pkg/index.js`, 'x');
  await writeFile(`${dir}/w/marker.txt`, 'm');
  await rec.waitFor(() => seen(`${dir}/w/marker.txt`, 'create'), 'marker');
  assert.ok(!changes().some((m) => String(m.path).includes('node_modules')), 'nothing from node_modules');

  const got = await t.call('GET', `/watchers/${id}`);
  assert.equal((got.body.watcher as Msg).dir_count, 4, 'late/ is now watched');
  const list = await t.call('GET', '/watchers');
  assert.deepEqual((list.body.watchers as Msg[]).map((x) => x.id), [id]);

  const del = await t.call('DELETE', `/watchers/${id}`);
  assert.deepEqual(del.body, { success: true, watcher_id: id });
  const before = changes().length;
  await writeFile(`${dir}/w/after-delete.txt`, 'x');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(changes().length, before, 'no events after delete');
  assert.equal((await t.call('GET', `/watchers/${id}`)).status, 404);
  rec.close();
});

test('root and exclude aliases; errors', async () => {
  await mkdir(`${dir}/alias/.git/objects`, { recursive: true });
  const r = await t.call('POST', '/watchers', { root: `${dir}/alias`, exclude: ['.git'] });
  const w = r.body.watcher as Msg;
  assert.equal(w.root, `${dir}/alias`);
  assert.equal(w.dir_count, 1);
  await t.call('DELETE', `/watchers/${w.id}`);
  assert.equal((await t.call('POST', '/watchers', { path: `${dir}/missing` })).status, 404);
  await writeFile(`${dir}/plain`, 'x');
  const notDir = await t.call('POST', '/watchers', { path: `${dir}/plain` });
  assert.equal(notDir.status, 400);
  assert.equal(notDir.body.code, 'not_directory');
  assert.equal((await t.call('POST', '/watchers', {})).status, 400);
  assert.equal((await t.call('DELETE', '/watchers/999')).status, 404);
});
