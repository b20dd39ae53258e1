/**
 * The runtime data plane through the official SDK's `Runtime` against a real
 * `hearth serve` and real container workspaces: discovery, files, search and
 * tar.gz transfers — contents, shapes and error codes as spec §22 says.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Oblien, NotFoundError, OblienError, ValidationError, type Runtime } from 'oblien';
import * as tar from 'tar';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { checkRuntimeContract, runtimeFor } from '../helpers/runtime-sdk.ts';

let h: HearthInstance;
let client: Oblien;
let rt: Runtime;
let contract: ReturnType<typeof checkRuntimeContract>;
let tmp: string;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  contract = checkRuntimeContract(h.runtime);
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  ({ rt } = await runtimeFor(client, h, ws.id));
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-rt-files-'));
});
after(async () => {
  contract?.restore();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  if (h) await h.stop();
});

/** The SDK's error, with its code and status, for assert.rejects. */
const code = (c: string, status?: number) => (e: unknown) => {
  assert.ok(e instanceof OblienError, `an OblienError, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  if (status !== undefined) assert.equal(e.status, status);
  return true;
};

test('health, info, targets', { skip: needsRoot }, async () => {
  assert.equal(await rt.health(), true);
  const info = await rt.info();
  assert.equal(info.os, 'linux');
  assert.equal(info.arch, 'x64');
  assert.ok(info.cpus >= 1);
  assert.equal(info.home, '/root');
  assert.match(info.shell, /^\/bin\/(ba)?sh$/);
  for (const c of ['exec', 'files', 'search', 'transfer', 'terminals', 'watchers', 'ws', 'proxy']) assert.ok(info.capabilities?.includes(c), c);
  const t = await rt.targets();
  assert.equal(t.default_target, 'default');
  assert.deepEqual(t.targets.map((x) => [x.id, x.local, x.available]), [['default', true, true]]);
  assert.equal(t.targets[0]!.runtime?.os, 'linux');
  // A named target is a path prefix (§22.1); this agent is the only one, "default".
  assert.equal((await rt.forTarget('default').exec.run(['echo', 'via target'])).stdout, 'via target\n');
  await assert.rejects(rt.forTarget('gpu').files.stat({ path: '/' }), code('not_found', 404));
});

test('files: write, read, stat, mkdir, list (hidden, recursive, nested), stream, delete', { skip: needsRoot }, async () => {
  // The seed writes without createDirs: missing parents are created.
  const w = await rt.files.write({ fullPath: '/srv/app/src/index.js', content: 'console.log("hi");\n' });
  assert.deepEqual(w, { success: true, path: '/srv/app/src/index.js', size: 19 });
  await rt.files.write({ fullPath: '/srv/app/.env', content: 'SECRET=1\n', mode: '0600' });
  await rt.files.write({ fullPath: '/srv/app/notes.txt', content: 'one\ntwo\n' });
  await rt.files.write({ fullPath: '/srv/app/notes.txt', content: 'three\nfour\n', append: true });
  await assert.rejects(rt.files.write({ fullPath: '/srv/nope/deeper/x.txt', content: 'x', createDirs: false }), code('not_found', 404));
  const mk = await rt.files.mkdir({ path: '/srv/app/empty/nested', mode: '0750' });
  assert.equal(mk.path, '/srv/app/empty/nested');

  const read = await rt.files.read({ filePath: '/srv/app/notes.txt' });
  assert.equal(read.content, 'one\ntwo\nthree\nfour\n');
  assert.equal(read.size, 19);
  assert.equal(read.lines, 4);
  const range = await rt.files.read({ filePath: '/srv/app/notes.txt', startLine: 2, endLine: 3, withLineNumbers: true });
  assert.equal(range.content, '2\ttwo\n3\tthree\n');
  assert.deepEqual([range.start_line, range.end_line], [2, 3]);

  const st = await rt.files.stat({ path: '/srv/app/.env' }) as unknown as Record<string, unknown>;
  assert.equal(st.type, 'file');
  assert.equal(st.size, 9);
  assert.equal(st.permissions, '0600', 'mode applied exactly, whatever the umask');
  assert.ok(Math.abs(Date.parse(String(st.modified)) - Date.now()) < 60_000);
  const dst = await rt.files.stat({ path: '/srv/app/empty/nested' }) as unknown as Record<string, unknown>;
  assert.equal(dst.type, 'directory');
  assert.equal(dst.permissions, '0750');
  assert.equal((await rt.files.stat({ path: '/srv/app/src/index.js' }) as unknown as Record<string, unknown>).is_code, true);
  await rt.exec.run(['ln', '-s', '/srv/app/notes.txt', '/srv/app/link']);
  const link = await rt.files.stat({ path: '/srv/app/link' }) as unknown as Record<string, unknown>;
  assert.equal(link.type, 'symlink');
  assert.equal(link.symlink_target, '/srv/app/notes.txt');

  const top = await rt.files.list({ dirPath: '/srv/app' });
  assert.equal(top.path, '/srv/app');
  const byName = Object.fromEntries(top.entries.map((e) => [e.name, e]));
  assert.deepEqual(Object.keys(byName).sort(), ['.env', 'empty', 'link', 'notes.txt', 'src'], 'hidden files are listed');
  assert.equal(byName['notes.txt']!.size, 19);
  assert.equal(byName['notes.txt']!.type, 'file');
  assert.equal(byName.src!.type, 'directory');
  assert.equal(byName.link!.type, 'symlink');
  assert.equal(top.count, 5);

  const flat = await rt.files.list({ dirPath: '/srv/app', flatten: true });
  assert.ok(flat.entries.some((e) => e.path === '/srv/app/src/index.js'), 'recursive listing reaches nested files');
  assert.ok(flat.entries.some((e) => e.path === '/srv/app/empty/nested'));
  const nested = await rt.files.list({ dirPath: '/srv/app', nested: true });
  const src = nested.entries.find((e) => e.name === 'src');
  assert.deepEqual(src?.children?.map((c) => c.name), ['index.js']);
  const withContent = await rt.files.list({ dirPath: '/srv/app/src', includeContent: true, includeHash: true });
  assert.equal(withContent.entries[0]!.content, 'console.log("hi");\n');
  assert.match(withContent.entries[0]!.hash!, /^[0-9a-f]{64}$/);

  const streamed = [];
  for await (const e of rt.files.stream({ dirPath: '/srv/app', flatten: true })) streamed.push(e.path);
  assert.deepEqual(streamed.sort(), flat.entries.map((e) => e.path).sort(), 'NDJSON stream = the same entries as the JSON list');

  const del = await rt.files.delete({ path: '/srv/app/empty' });
  assert.deepEqual(del, { success: true, path: '/srv/app/empty' });
  await assert.rejects(rt.files.stat({ path: '/srv/app/empty/nested' }), NotFoundError);
});

test('files: bad input gets clear errors and the agent keeps serving', { skip: needsRoot }, async () => {
  await assert.rejects(rt.files.read({ filePath: '/no/such/file' }), (e: unknown) => e instanceof NotFoundError && /No such file/.test(e.message));
  await assert.rejects(rt.files.stat({ path: '/no/such' }), code('not_found', 404));
  await assert.rejects(rt.files.delete({ path: '/no/such' }), code('not_found', 404));
  await assert.rejects(rt.files.list({ dirPath: '/no/such' }), code('not_found', 404));
  await assert.rejects(rt.files.read({ filePath: '/srv' }), code('is_directory', 400));
  await assert.rejects(rt.files.list({ dirPath: '/srv/app/notes.txt' }), code('not_directory', 400));
  await assert.rejects(rt.files.read({ filePath: '' }), ValidationError);
  await assert.rejects(rt.files.write({ fullPath: '/srv/x', content: 'x', mode: 'rwx' }), ValidationError);
  // Past the write limit (64 MiB of content): refused, pointing at the streaming transfer.
  await assert.rejects(rt.files.write({ fullPath: '/srv/huge.bin', content: 'x'.repeat(65 * 1024 * 1024) }),
    (e: unknown) => code('payload_too_large', 413)(e) && /transfer/.test((e as Error).message));
  await assert.rejects(rt.files.stat({ path: '/srv/huge.bin' }), NotFoundError, 'nothing was written');
  // "Outside the tree": `..` cannot climb out of the workspace, it only reaches the workspace's own root.
  const marker = path.join(tmp, 'host-only-marker');
  fs.writeFileSync(marker, 'host secret');
  await assert.rejects(rt.files.read({ filePath: `/../../../../..${marker}` }), NotFoundError, 'the host file system is not visible');
  const w = await rt.files.write({ fullPath: `/../../..${marker}`, content: 'guest' });
  assert.equal(w.path, marker, 'resolved inside the workspace');
  assert.equal(fs.readFileSync(marker, 'utf8'), 'host secret', 'the host file is untouched');
  assert.equal((await rt.files.read({ filePath: marker })).content, 'guest');

  assert.equal(await rt.health(), true);
  assert.equal((await rt.exec.run(['echo', 'still serving'])).stdout, 'still serving\n');
});

test('files: move and copy (extensions, not in the SDK) through the gateway', { skip: needsRoot }, async () => {
  const token = (rt as unknown as { _options: { token: string } })._options.token;
  const call = async (p: string, body: unknown) => {
    const res = await fetch(`${h.runtime}${p}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  };
  assert.equal((await call('/files/copy', { from: '/srv/app/src', to: '/srv/copy/src' })).status, 200);
  assert.equal((await rt.files.read({ filePath: '/srv/copy/src/index.js' })).content, 'console.log("hi");\n');
  assert.equal((await call('/files/move', { from: '/srv/copy', to: '/srv/moved' })).status, 200);
  await assert.rejects(rt.files.stat({ path: '/srv/copy' }), NotFoundError);
  const clash = await call('/files/move', { from: '/srv/moved', to: '/srv/app' });
  assert.equal(clash.status, 409);
  assert.equal(clash.body.success, false);
});

test('search: content and names with the contract options; status and init; a 10 000-file tree', { skip: needsRoot }, async () => {
  await rt.files.write({ fullPath: '/code/a.ts', content: 'export function handleRequest() {}\nconst HANDLEREQUEST = 1;\n' });
  await rt.files.write({ fullPath: '/code/b.js', content: 'handleRequest();\nfoo.handleRequestX();\n' });
  await rt.files.write({ fullPath: '/code/.hidden/c.ts', content: 'handleRequest\n' });
  await rt.files.write({ fullPath: '/code/ignored/d.ts', content: 'handleRequest\n' });
  await rt.files.write({ fullPath: '/code/.gitignore', content: 'ignored/\n' });

  // Defaults: case-insensitive (the agent's choice), hidden and gitignored files skipped.
  const all = await rt.search.content({ query: 'handleRequest', path: '/code' });
  assert.deepEqual(Object.keys(all.results).sort(), ['/code/a.ts', '/code/b.js'], 'hidden and gitignored files are skipped by default');
  assert.deepEqual(all.results['/code/a.ts']!.map((m) => [m.line, m.text]), [[1, 'export function handleRequest() {}'], [2, 'const HANDLEREQUEST = 1;']]);
  assert.equal(all.total_matches, 4);
  assert.equal(all.total_files, 2);
  assert.equal(all.capped, false);
  const cs = await rt.search.content({ query: 'handleRequest', path: '/code', caseSensitive: true });
  assert.equal(cs.total_matches, 3);
  const word = await rt.search.content({ query: 'handleRequest', path: '/code', wholeWord: true, caseSensitive: true });
  assert.equal(word.total_matches, 2, 'handleRequestX is not the whole word');
  const re = await rt.search.content({ query: 'handle\\w+\\(\\)', path: '/code', regex: true });
  assert.deepEqual(Object.keys(re.results).sort(), ['/code/a.ts', '/code/b.js']);
  const types = await rt.search.content({ query: 'handleRequest', path: '/code', fileTypes: ['ts'] } as never);
  assert.deepEqual(Object.keys(types.results), ['/code/a.ts']);
  const every = await rt.search.content({ query: 'handleRequest', path: '/code', includeHidden: true, noGitignore: true });
  assert.equal(every.total_files, 4);
  const capped = await rt.search.content({ query: 'handleRequest', path: '/code', maxResults: 1 });
  assert.equal(capped.total_matches, 1);
  assert.equal(capped.capped, true);

  const names = await rt.search.files({ query: 'b.js', path: '/code' });
  assert.deepEqual(names.files, ['/code/b.js']);
  assert.equal(names.total_files, 1);
  const status = await rt.search.status();
  assert.equal(status.installed, true);
  assert.equal((await rt.search.init()).success, true);
  await assert.rejects(rt.search.content({ query: '', path: '/code' }), ValidationError);
  await assert.rejects(rt.search.content({ query: '(', path: '/code', regex: true }), ValidationError);

  // A 10 000-file tree (made inside the workspace), one match at the bottom.
  const made = await rt.exec.run(['node', '-e', `
    const fs = require('fs');
    for (let d = 0; d < 100; d++) {
      fs.mkdirSync('/big/d' + d, { recursive: true });
      for (let f = 0; f < 100; f++) fs.writeFileSync('/big/d' + d + '/f' + f + '.txt', 'line one\\nnothing to see ' + d + '/' + f + '\\n');
    }
    fs.writeFileSync('/big/d99/f99.txt', 'the needle_42 is here\\n');`]);
  assert.equal(made.exit_code, 0, made.stderr);
  const t0 = performance.now();
  const needle = await rt.search.content({ query: 'needle_42', path: '/big' });
  const contentMs = performance.now() - t0;
  assert.deepEqual(Object.keys(needle.results), ['/big/d99/f99.txt']);
  const t1 = performance.now();
  const byName = await rt.search.files({ query: 'f99.txt', path: '/big', maxResults: 1000 });
  const namesMs = performance.now() - t1;
  assert.equal(byName.total_files, 100);
  const listed = await rt.files.list({ dirPath: '/big', flatten: true, light: true });
  assert.equal(listed.count, 10_100);
  process.stderr.write(`# search over 10 000 files: content ${contentMs.toFixed(0)} ms, names ${namesMs.toFixed(0)} ms\n`);
});

test('transfer: tar.gz upload and download of a tree, with excludes; unsafe archives refused', { skip: needsRoot }, async () => {
  // A local tree: text, binary, an empty dir, a symlink, an executable.
  const src = path.join(tmp, 'tree');
  fs.mkdirSync(path.join(src, 'project/lib'), { recursive: true });
  fs.mkdirSync(path.join(src, 'project/node_modules/dep'), { recursive: true });
  fs.mkdirSync(path.join(src, 'project/empty'));
  fs.writeFileSync(path.join(src, 'project/lib/main.py'), 'print("hello")\n');
  const bin = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff));
  fs.writeFileSync(path.join(src, 'project/data.bin'), bin);
  fs.writeFileSync(path.join(src, 'project/run.sh'), '#!/bin/sh\necho run\n', { mode: 0o755 });
  fs.writeFileSync(path.join(src, 'project/node_modules/dep/index.js'), 'module.exports = 1;\n');
  fs.symlinkSync('lib/main.py', path.join(src, 'project/main-link'));
  const archive = path.join(tmp, 'tree.tar.gz');
  await tar.create({ gzip: true, cwd: src, file: archive, portable: true }, ['project']);

  const progress: number[] = [];
  const up = await rt.transfer.upload({
    body: Readable.toWeb(fs.createReadStream(archive)) as unknown as ReadableStream<Uint8Array>,
    dest: '/upload', totalBytes: fs.statSync(archive).size, onProgress: (p) => progress.push(p.loadedBytes),
  });
  assert.deepEqual({ ...up }, { success: true, dest: '/upload', files_extracted: 5 });
  assert.equal(progress[progress.length - 1], fs.statSync(archive).size);
  assert.equal((await rt.files.read({ filePath: '/upload/project/lib/main.py' })).content, 'print("hello")\n');
  const run = await rt.exec.run(['/upload/project/run.sh']);
  assert.equal(run.stdout, 'run\n', 'the executable bit survives');
  assert.equal((await rt.files.stat({ path: '/upload/project/main-link' }) as unknown as Record<string, unknown>).symlink_target, 'lib/main.py');
  assert.equal((await rt.files.stat({ path: '/upload/project/empty' })).type, 'directory');
  const sum = await rt.exec.run(['sha256sum', '/upload/project/data.bin']);
  assert.match(sum.stdout!, new RegExp(`^${(await import('node:crypto')).createHash('sha256').update(bin).digest('hex')} `), 'binary-safe');

  const seen: number[] = [];
  const res = await rt.transfer.download({ paths: ['/upload/project'], excludePatterns: ['node_modules'], onProgress: (p) => seen.push(p.loadedBytes) });
  assert.equal(res.headers.get('content-type'), 'application/gzip');
  const out = path.join(tmp, 'out');
  fs.mkdirSync(out);
  await new Promise<void>((resolve, reject) => {
    Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)
      .pipe(tar.extract({ cwd: out })).on('finish', resolve).on('error', reject);
  });
  assert.ok(seen.length > 0 && seen.every((b, i) => i === 0 || b > seen[i - 1]!), 'download progress grows');
  assert.equal(fs.readFileSync(path.join(out, 'upload/project/lib/main.py'), 'utf8'), 'print("hello")\n', 'entries are relative to /');
  assert.deepEqual(fs.readFileSync(path.join(out, 'upload/project/data.bin')), bin);
  assert.equal(fs.readlinkSync(path.join(out, 'upload/project/main-link')), 'lib/main.py');
  assert.equal(fs.statSync(path.join(out, 'upload/project/run.sh')).mode & 0o111, 0o111);
  assert.equal(fs.existsSync(path.join(out, 'upload/project/node_modules')), false, 'excluded');
  await assert.rejects(rt.transfer.download({ paths: ['/no/such/dir'] }), code('not_found', 404));

  // Hostile archives: `..`, absolute paths, a symlink escaping dest — refused with 400, nothing written outside.
  const hostile = async (entries: Array<{ path: string; type?: 'File' | 'SymbolicLink'; linkpath?: string }>) => {
    const chunks: Buffer[] = [];
    const { Header } = tar;
    for (const e of entries) {
      const body = e.type === 'SymbolicLink' ? Buffer.alloc(0) : Buffer.from('pwned\n');
      const hd = new Header({ path: e.path, mode: 0o644, size: body.length, type: e.type ?? 'File', linkpath: e.linkpath ?? '', mtime: new Date() });
      const block = Buffer.alloc(512);
      hd.encode(block, 0);
      chunks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
    chunks.push(Buffer.alloc(1024));
    const gz = (await import('node:zlib')).gzipSync(Buffer.concat(chunks));
    return rt.transfer.upload({ body: new Uint8Array(gz), dest: '/upload/safe' });
  };
  await assert.rejects(hostile([{ path: '../../etc/evil' }]), (e: unknown) => code('bad_request', 400)(e) && /\.\./.test((e as Error).message));
  await assert.rejects(hostile([{ path: '/etc/evil-abs' }]), code('bad_request', 400));
  await assert.rejects(hostile([{ path: 'link', type: 'SymbolicLink', linkpath: '../../../etc' }, { path: 'link/evil' }]), code('bad_request', 400));
  await assert.rejects(rt.files.stat({ path: '/etc/evil' }), NotFoundError);
  await assert.rejects(rt.files.stat({ path: '/etc/evil-abs' }), NotFoundError);
  await assert.rejects(rt.transfer.upload({ body: new TextEncoder().encode('this is not a tar archive'), dest: '/upload/x' }), code('bad_request', 400));
  assert.equal(await rt.health(), true, 'the agent keeps serving');
});

test('every runtime error answered through the gateway carried the contract error body', { skip: needsRoot }, () => {
  assert.ok(contract.checked() > 50, `checked ${contract.checked()} responses`);
  assert.deepEqual(contract.violations(), []);
});
