/** Guest agent: tar.gz transfer both ways (spec §22.8), including hostile archives. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { list as tarList } from 'tar';
import { startTestAgent, withTempDir, type TestAgent } from '../helpers/agent-harness.ts';

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

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

/** One raw ustar entry, so tests can build archives no well-behaved tool would write. */
function tarEntry(name: string, body: Buffer = Buffer.alloc(0), type = '0', linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write(linkname, 157, 100);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([h, body, pad]);
}

const tgz = (...entries: Buffer[]): Buffer => gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));

async function upload(dest: string, body: Buffer | ReadableStream<Uint8Array>, extra = ''): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await t.fetch(`/files/transfer/upload?dest=${encodeURIComponent(dest)}${extra}`, {
    method: 'POST',
    headers: { 'content-type': 'application/gzip' },
    body,
    ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
  } as RequestInit);
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

describe('download', () => {
  test('tar.gz of paths, entries relative to /, excludes applied, symlinks kept', async () => {
    const app = `${dir}/app`;
    await mkdir(`${app}/src`, { recursive: true });
    await mkdir(`${app}/node_modules/dep`, { recursive: true });
    await mkdir(`${app}/.git`, { recursive: true });
    await writeFile(`${app}/src/x.js`, 'console.log(1);\n');
    await writeFile(`${app}/src/all.bin`, ALL_BYTES);
    await writeFile(`${app}/node_modules/dep/index.js`, 'dep');
    await writeFile(`${app}/.git/HEAD`, 'ref');
    await writeFile(`${dir}/single.txt`, 'single');
    await symlink('src/x.js', `${app}/link`);

    const res = await t.fetch('/files/transfer/download', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ paths: [app, `${dir}/single.txt`], exclude_patterns: ['node_modules', '.git'] }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/gzip');
    const archive = Buffer.from(await res.arrayBuffer());
    assert.deepEqual([...archive.subarray(0, 2)], [0x1f, 0x8b], 'gzip magic');

    const entries = new Map<string, { type: string; body: Buffer; linkpath?: string }>();
    await new Promise<void>((resolve, reject) => {
      const parser = tarList({
        onReadEntry: (e) => {
          const chunks: Buffer[] = [];
          e.on('data', (c: Buffer) => chunks.push(c));
          e.on('end', () => entries.set(e.path.replace(/\/$/, ''), { type: e.type, body: Buffer.concat(chunks), ...(e.linkpath ? { linkpath: e.linkpath } : {}) }));
        },
      });
      parser.on('end', () => resolve());
      parser.on('error', reject);
      parser.end(archive);
    });
    const base = dir.slice(1);
    assert.equal(entries.get(`${base}/app/src/x.js`)?.body.toString(), 'console.log(1);\n');
    assert.ok(entries.get(`${base}/app/src/all.bin`)?.body.equals(ALL_BYTES));
    assert.equal(entries.get(`${base}/single.txt`)?.body.toString(), 'single');
    assert.deepEqual(entries.get(`${base}/app/link`), { type: 'SymbolicLink', body: Buffer.alloc(0), linkpath: 'src/x.js' });
    assert.ok(![...entries.keys()].some((k) => k.includes('node_modules') || k.includes('.git')), [...entries.keys()].join(','));
    assert.ok(![...entries.keys()].some((k) => k.startsWith('/')), 'no absolute entries');

    // The system tar agrees, and extraction recreates the tree (what `oblien files pull` does).
    const out = `${dir}/pulled`;
    await mkdir(out);
    execFileSync('tar', ['-xzf', '-', '-C', out], { input: archive });
    assert.equal(await readFile(`${out}/${base}/app/src/x.js`, 'utf8'), 'console.log(1);\n');
  });

  test('errors before any byte: missing path 404, no paths 400, / refused', async () => {
    const missing = await t.call('POST', '/files/transfer/download', { paths: [`${dir}/nope`] });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.success, false);
    assert.equal((await t.call('POST', '/files/transfer/download', { paths: [] })).status, 400);
    assert.equal((await t.call('POST', '/files/transfer/download', {})).status, 400);
    assert.equal((await t.call('POST', '/files/transfer/download', { paths: ['/'] })).status, 400);
  });
});

describe('upload', () => {
  test('round trip of a tree made by the system tar (as `oblien files push` does), streamed without length', async () => {
    const src = `${dir}/push-src`;
    await mkdir(`${src}/a/b`, { recursive: true });
    await writeFile(`${src}/a/b/c.txt`, 'deep');
    await writeFile(`${src}/bin.dat`, ALL_BYTES);
    await writeFile(`${src}/run.sh`, '#!/bin/sh\n', { mode: 0o755 });
    await symlink('a/b/c.txt', `${src}/ln`);
    const archive = execFileSync('tar', ['-czf', '-', '-C', src, '.']);
    const dest = `${dir}/push-dest/new`;
    // Stream in small chunks with no Content-Length, as the SDK does (duplex: 'half').
    const stream = Readable.toWeb(Readable.from((function* () {
      for (let i = 0; i < archive.length; i += 100) yield archive.subarray(i, i + 100);
    })())) as ReadableStream<Uint8Array>;
    const r = await upload(dest, stream);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { success: true, dest, files_extracted: 4 });
    assert.equal(await readFile(`${dest}/a/b/c.txt`, 'utf8'), 'deep');
    assert.ok((await readFile(`${dest}/bin.dat`)).equals(ALL_BYTES));
    assert.equal((await stat(`${dest}/run.sh`)).mode & 0o777, 0o755);
    assert.equal(await readlink(`${dest}/ln`), 'a/b/c.txt');
  });

  test('entries escaping dest are rejected: .., absolute, symlink out, hard link out', async () => {
    const dest = `${dir}/jail`;
    await mkdir(dest, { recursive: true });
    const cases: [string, Buffer, string][] = [
      ['dot-dot', tgz(tarEntry('ok.txt', Buffer.from('ok')), tarEntry('../escaped.txt', Buffer.from('x'))), `${dir}/escaped.txt`],
      ['nested dot-dot', tgz(tarEntry('a/../../escaped2.txt', Buffer.from('x'))), `${dir}/escaped2.txt`],
      ['absolute', tgz(tarEntry(`${dir}/abs.txt`, Buffer.from('x'))), `${dir}/abs.txt`],
      ['symlink out (relative)', tgz(tarEntry('evil', undefined, '2', '../../outside')), `${dest}/evil`],
      ['symlink out (absolute) then write through', tgz(tarEntry('evil2', undefined, '2', dir), tarEntry('evil2/through.txt', Buffer.from('x'))), `${dir}/through.txt`],
      ['hard link out', tgz(tarEntry('h', undefined, '1', '../single.txt')), `${dest}/h`],
    ];
    for (const [name, archive, mustNotExist] of cases) {
      const r = await upload(dest, archive);
      assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.success, false);
      assert.match(r.body.message as string, /Unsafe archive entry/, name);
      await assert.rejects(lstat(mustNotExist), `${name}: ${mustNotExist} must not exist`);
    }
    // A symlink that stays inside dest is fine.
    const fine = await upload(dest, tgz(tarEntry('t.txt', Buffer.from('t')), tarEntry('in', undefined, '2', 't.txt')));
    assert.equal(fine.status, 200, JSON.stringify(fine.body));
    assert.equal(await readlink(`${dest}/in`), 't.txt');
  });

  test('size limit (gzip bombs) and garbage', async () => {
    const big = tgz(tarEntry('big.bin', Buffer.alloc(5000)));
    const r = await upload(`${dir}/lim`, big, '&max_bytes=1000');
    assert.equal(r.status, 413);
    assert.equal(r.body.code, 'payload_too_large');
    const ok = await upload(`${dir}/lim`, big, '&max_bytes=10000');
    assert.equal(ok.status, 200);
    const junk = await upload(`${dir}/junk`, Buffer.from('this is not a tar archive at all, not even close'.repeat(20)));
    assert.equal(junk.status, 400);
    assert.equal(junk.body.success, false);
    assert.equal((await t.call('GET', '/health')).status, 200);
  });
});
