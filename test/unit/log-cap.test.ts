import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { capLog, keepTail, LogCapper, readTail } from '../../src/host/log-cap.ts';
import { fileAccessLog } from '../../src/edge/access-log.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-logcap-'));

test('capLog: past the cap the newest cap bytes go to .1 and the file is emptied; an appending writer goes on at the start', async () => {
  const dir = tmp();
  const f = path.join(dir, 'console.log');
  const fd = fs.openSync(f, 'a');
  fs.writeSync(fd, 'a'.repeat(3000) + 'b'.repeat(1000));
  assert.equal(await capLog(f, 5000), false, 'under the cap: untouched');
  fs.writeSync(fd, 'c'.repeat(2000));
  assert.equal(await capLog(f, 5000), true);
  assert.equal(fs.statSync(f).size, 0);
  const prev = fs.readFileSync(`${f}.1`, 'utf8');
  assert.equal(prev.length, 5000);
  assert.ok(prev.endsWith('b'.repeat(1000) + 'c'.repeat(2000)));
  fs.writeSync(fd, 'next');
  assert.equal(fs.readFileSync(f, 'utf8'), 'next', 'O_APPEND writes land at the new end, no hole');
  fs.closeSync(fd);
  assert.equal(await capLog(path.join(dir, 'missing'), 10), false);
  fs.rmSync(dir, { recursive: true });
});

test('readTail and keepTail read only the end of a file', async () => {
  const dir = tmp();
  const f = path.join(dir, 'log');
  fs.writeFileSync(f, 'x'.repeat(100_000) + 'END');
  assert.equal(await readTail(f, 10), `${'x'.repeat(7)}END`);
  assert.equal(await readTail(path.join(dir, 'none')), '');
  // A multi-byte character cut in half at the start is dropped, not garbled.
  fs.writeFileSync(f, 'ééé');
  assert.equal(await readTail(f, 5), 'éé');
  await keepTail(f, path.join(dir, 'kept'), 4);
  assert.equal(fs.readFileSync(path.join(dir, 'kept'), 'utf8'), 'éé');
  fs.rmSync(dir, { recursive: true });
});

test('LogCapper keeps a watched log under its cap as it is written', async () => {
  const dir = tmp();
  const f = path.join(dir, 'console.log');
  fs.writeFileSync(f, '');
  const capper = new LogCapper(64 * 1024, 50);
  capper.watch(f);
  const fd = fs.openSync(f, 'a');
  for (let i = 0; i < 40; i++) {
    fs.writeSync(fd, 'y'.repeat(16 * 1024));
    await new Promise((r) => setTimeout(r, 5));
  }
  const deadline = Date.now() + 3000;
  while (fs.statSync(f).size > 64 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(fs.statSync(f).size <= 64 * 1024, `size ${fs.statSync(f).size}`);
  assert.ok(fs.statSync(`${f}.1`).size <= 64 * 1024);
  capper.close();
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true });
});

test('edge access log rotates past its cap', async () => {
  const dir = tmp();
  const log = fileAccessLog(dir, 2000);
  const entry = JSON.stringify({ status: 200, method: 'GET', host: 'a.example', path: '/', remote: '127.0.0.1', ms: 1, bytes: 2, secure: false });
  for (let i = 0; i < 100; i++) {
    log.write(entry);
    await new Promise((r) => setImmediate(r));
  }
  await log.close();
  const file = path.join(dir, 'logs', 'edge-access.log');
  const size = fs.statSync(file).size;
  const prev = fs.statSync(`${file}.1`).size;
  assert.ok(size <= 2200 && prev <= 2200 && prev > 0, `${size} / ${prev}`);
  fs.rmSync(dir, { recursive: true });
});
