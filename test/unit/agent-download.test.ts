/** Guest agent: download compression choices, and no file left open when a client abandons a download. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startTestAgent, type TestAgent } from '../helpers/agent-harness.ts';
import { waitUntil } from '../helpers/wait.ts';

let t: TestAgent;
let dir: string;
let big: string;

before(async () => {
  t = await startTestAgent();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-dl-'));
  big = path.join(dir, 'big.bin');
  fs.writeFileSync(big, Buffer.alloc(48 * 1024 * 1024, 7));
  fs.writeFileSync(path.join(dir, 'small.txt'), 'hello\n');
});
after(async () => {
  await t.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const download = (body: object, signal?: AbortSignal) => t.fetch('/files/transfer/download', {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}),
});

test('compression: gzip by default, a plain tar on request, anything else refused', async () => {
  const gz = await download({ paths: [path.join(dir, 'small.txt')] });
  assert.equal(gz.headers.get('content-type'), 'application/gzip');
  const tarBytes = gunzipSync(Buffer.from(await gz.arrayBuffer()));
  assert.equal(tarBytes.subarray(257, 262).toString(), 'ustar');
  const plain = await download({ paths: [path.join(dir, 'small.txt')], compression: 'none' });
  assert.equal(plain.headers.get('content-type'), 'application/x-tar');
  assert.match(plain.headers.get('content-disposition')!, /download\.tar"/);
  const raw = Buffer.from(await plain.arrayBuffer());
  assert.equal(raw.subarray(257, 262).toString(), 'ustar');
  assert.equal(raw.subarray(512, 518).toString(), 'hello\n');
  const bad = await download({ paths: [path.join(dir, 'small.txt')], compression: 'zip' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).code, 'validation_error');
});

test('a download the client abandons does not leave the file open', async () => {
  const openOnBig = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try { return fs.readlinkSync(`/proc/self/fd/${fd}`) === big; } catch { return false; }
  }).length;
  for (const compression of ['none', 'gzip']) {
    for (let i = 0; i < 3; i++) {
      const ac = new AbortController();
      const res = await download({ paths: [big], compression }, ac.signal);
      const reader = res.body!.getReader();
      await reader.read();
      ac.abort();
      await reader.cancel().catch(() => { /* aborted */ });
    }
    await waitUntil(`no descriptor left on the file (${compression})`, async () => openOnBig() === 0, 5000);
  }
});
