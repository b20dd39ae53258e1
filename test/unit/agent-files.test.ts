/** Guest agent files API (spec §22.3) driven over HTTP against the real agent. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
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

describe('files write / read', () => {
  test('text round-trip creates missing parents by default', async () => {
    const path = `${dir}/a/b/c/hello.txt`;
    const w = await t.call('POST', '/files/write', { path, content: 'héllo\nworld\n' });
    assert.deepEqual(w.body, { success: true, path, size: Buffer.byteLength('héllo\nworld\n') });
    assert.equal(await readFile(path, 'utf8'), 'héllo\nworld\n');
    const r = await t.call('GET', `/files/read?path=${encodeURIComponent(path)}`);
    assert.equal(r.body.content, 'héllo\nworld\n');
    assert.equal(r.body.lines, 2);
    assert.equal(r.body.extension, 'txt');
    assert.equal(r.body.size, 13);
  });

  test('create_dirs:false refuses a missing parent with 404', async () => {
    const r = await t.call('POST', '/files/write', { path: `${dir}/missing/x.txt`, content: 'x', create_dirs: false });
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 'not_found');
  });

  test('append and mode', async () => {
    const path = `${dir}/app.log`;
    await t.call('POST', '/files/write', { path, content: 'one\n' });
    const w = await t.call('POST', '/files/write', { path, content: 'two\n', append: true, mode: '0600' });
    assert.equal(w.body.size, 8);
    assert.equal(await readFile(path, 'utf8'), 'one\ntwo\n');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const exe = `${dir}/run.sh`;
    await t.call('POST', '/files/write', { path: exe, content: '#!/bin/sh\necho ran\n', mode: '755' });
    assert.equal((await stat(exe)).mode & 0o777, 0o755);
    const ran = await t.call('POST', '/exec', { cmd: [exe] });
    assert.equal(ran.body.stdout, 'ran\n');
    const bad = await t.call('POST', '/files/write', { path, content: '', mode: 'rwx' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'validation_error');
  });

  test('binary round-trip of all 256 byte values (base64 extension)', async () => {
    const path = `${dir}/bin/all.bytes`;
    const w = await t.call('POST', '/files/write', { path, content: ALL_BYTES.toString('base64'), encoding: 'base64' });
    assert.equal(w.body.size, 256);
    assert.ok((await readFile(path)).equals(ALL_BYTES));
    const r = await t.call('GET', `/files/read?path=${encodeURIComponent(path)}&encoding=base64`);
    assert.ok(Buffer.from(r.body.content as string, 'base64').equals(ALL_BYTES));
    assert.equal(r.body.binary, true);
    const slice = await t.call('GET', `/files/read?path=${encodeURIComponent(path)}&encoding=base64&offset=250&length=100`);
    assert.deepEqual([...Buffer.from(slice.body.content as string, 'base64')], [250, 251, 252, 253, 254, 255]);
    assert.equal(slice.body.offset, 250);
    assert.equal(slice.body.length, 6);
  });

  test('line ranges and line numbers', async () => {
    const path = `${dir}/lines.txt`;
    await writeFile(path, 'l1\nl2\nl3\nl4\nl5\n');
    const mid = await t.call('GET', `/files/read?path=${encodeURIComponent(path)}&start_line=2&end_line=4`);
    assert.equal(mid.body.content, 'l2\nl3\nl4\n');
    assert.equal(mid.body.start_line, 2);
    assert.equal(mid.body.end_line, 4);
    assert.equal(mid.body.lines, 5);
    const numbered = await t.call('GET', `/files/read?path=${encodeURIComponent(path)}&start_line=4&with_line_numbers=true`);
    assert.equal(numbered.body.content, '4\tl4\n5\tl5\n');
    const past = await t.call('GET', `/files/read?path=${encodeURIComponent(path)}&start_line=9`);
    assert.equal(past.body.content, '');
    const inverted = await t.call('GET', `/files/read?path=${encodeURIComponent(path)}&start_line=3&end_line=2`);
    assert.equal(inverted.status, 400);
    await writeFile(`${dir}/nonl.txt`, 'a\nb');
    const last = await t.call('GET', `/files/read?path=${encodeURIComponent(`${dir}/nonl.txt`)}&start_line=2`);
    assert.equal(last.body.content, 'b');
  });

  test('read errors: missing → 404, directory → 400 is_directory, oversized → 413 naming transfer', async () => {
    const missing = await t.call('GET', `/files/read?path=${encodeURIComponent(`${dir}/nope`)}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'not_found');
    const isDir = await t.call('GET', `/files/read?path=${encodeURIComponent(dir)}`);
    assert.equal(isDir.status, 400);
    assert.equal(isDir.body.code, 'is_directory');
    const big = `${dir}/big.sparse`;
    const fh = await import('node:fs/promises').then((m) => m.open(big, 'w'));
    await fh.truncate(51 * 1024 * 1024); // sparse: no real disk use
    await fh.close();
    const tooBig = await t.call('GET', `/files/read?path=${encodeURIComponent(big)}`);
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.body.code, 'file_too_large');
    assert.match(tooBig.body.message as string, /transfer/);
    const ranged = await t.call('GET', `/files/read?path=${encodeURIComponent(big)}&offset=1000&length=4&encoding=base64`);
    assert.equal(ranged.body.content, Buffer.alloc(4).toString('base64'));
    await t.call('POST', '/files/delete', { path: big });
  });

  test('writing onto a directory → 400 is_directory; missing path → 400', async () => {
    const r = await t.call('POST', '/files/write', { path: dir, content: 'x' });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'is_directory');
    const none = await t.call('POST', '/files/write', { content: 'x' });
    assert.equal(none.status, 400);
    assert.equal(none.body.code, 'validation_error');
  });

  test('relative paths resolve against /', async () => {
    const rel = dir.slice(1) + '/rel.txt';
    const w = await t.call('POST', '/files/write', { path: rel, content: 'r' });
    assert.equal(w.body.path, `${dir}/rel.txt`);
    assert.equal(await readFile(`${dir}/rel.txt`, 'utf8'), 'r');
  });
});

describe('files list / stream / stat', () => {
  let root: string;
  before(async () => {
    root = `${dir}/tree`;
    await mkdir(`${root}/src/lib`, { recursive: true });
    await writeFile(`${root}/README.md`, '# hi\n');
    await writeFile(`${root}/.hidden`, 'h');
    await writeFile(`${root}/src/index.ts`, 'export {};\n');
    await writeFile(`${root}/src/lib/util.ts`, 'export const x = 1;\n');
    await symlink('src/index.ts', `${root}/link`);
  });

  test('default: direct children with hidden files, sizes, modes, mtimes, symlinks as symlink', async () => {
    const r = await t.call('GET', `/files?path=${encodeURIComponent(root)}`);
    assert.equal(r.body.path, root);
    const entries = r.body.entries as Record<string, unknown>[];
    assert.deepEqual(entries.map((e) => e.name).sort(), ['.hidden', 'README.md', 'link', 'src']);
    assert.equal(r.body.count, 4);
    const readme = entries.find((e) => e.name === 'README.md') as Record<string, unknown>;
    assert.equal(readme.type, 'file');
    assert.equal(readme.size, 5);
    assert.equal(readme.path, `${root}/README.md`);
    assert.match(readme.mode as string, /^0[0-7]{3}$/);
    assert.ok(!Number.isNaN(Date.parse(readme.modified as string)));
    const link = entries.find((e) => e.name === 'link') as Record<string, unknown>;
    assert.equal(link.type, 'symlink');
    assert.equal(link.symlink_target, 'src/index.ts');
    assert.equal((entries.find((e) => e.name === 'src') as Record<string, unknown>).type, 'directory');
  });

  test('flatten walks recursively; max_depth bounds it; nested builds children', async () => {
    const flat = await t.call('GET', `/files?path=${encodeURIComponent(root)}&flatten=true`);
    const paths = (flat.body.entries as { path: string }[]).map((e) => e.path.slice(root.length + 1)).sort();
    assert.deepEqual(paths, ['.hidden', 'README.md', 'link', 'src', 'src/index.ts', 'src/lib', 'src/lib/util.ts']);
    const two = await t.call('GET', `/files?path=${encodeURIComponent(root)}&flatten=true&max_depth=2`);
    assert.ok(!(two.body.entries as { path: string }[]).some((e) => e.path.endsWith('util.ts')));
    assert.ok((two.body.entries as { path: string }[]).some((e) => e.path.endsWith('src/lib')));
    const nested = await t.call('GET', `/files?path=${encodeURIComponent(root)}&nested=true`);
    const src = (nested.body.entries as { name: string; children?: { name: string; children?: { name: string }[] }[] }[])
      .find((e) => e.name === 'src');
    assert.deepEqual(src?.children?.map((c) => c.name), ['index.ts', 'lib']);
    assert.deepEqual(src?.children?.find((c) => c.name === 'lib')?.children?.map((c) => c.name), ['util.ts']);
  });

  test('ignore_patterns, include_ext, code_files_only, light, include_hash, include_content', async () => {
    const ign = await t.call('GET', `/files?path=${encodeURIComponent(root)}&flatten=true&ignore_patterns=lib,.hidden`);
    const names = (ign.body.entries as { name: string }[]).map((e) => e.name);
    assert.ok(!names.includes('lib') && !names.includes('util.ts') && !names.includes('.hidden'));
    const ts = await t.call('GET', `/files?path=${encodeURIComponent(root)}&flatten=true&include_ext=ts`);
    const files = (ts.body.entries as { name: string; type: string }[]).filter((e) => e.type !== 'directory').map((e) => e.name);
    assert.deepEqual(files.sort(), ['index.ts', 'util.ts']);
    const code = await t.call('GET', `/files?path=${encodeURIComponent(root)}&code_files_only=true`);
    assert.deepEqual((code.body.entries as { name: string }[]).map((e) => e.name).sort(), ['README.md', 'src']);
    const light = await t.call('GET', `/files?path=${encodeURIComponent(root)}&light=true`);
    assert.deepEqual(Object.keys((light.body.entries as object[])[0] as object).sort(), ['name', 'path', 'type']);
    const rich = await t.call('GET', `/files?path=${encodeURIComponent(root)}&include_hash=true&include_content=true`);
    const readme = (rich.body.entries as Record<string, unknown>[]).find((e) => e.name === 'README.md');
    assert.equal(readme?.content, '# hi\n');
    assert.equal(readme?.hash, createHash('sha256').update('# hi\n').digest('hex'));
  });

  test('list errors: missing → 404, a file → 400 not_directory', async () => {
    assert.equal((await t.call('GET', `/files?path=${encodeURIComponent(`${root}/zzz`)}`)).status, 404);
    const f = await t.call('GET', `/files?path=${encodeURIComponent(`${root}/README.md`)}`);
    assert.equal(f.status, 400);
    assert.equal(f.body.code, 'not_directory');
  });

  test('stream: NDJSON with start/done control lines around every entry', async () => {
    const res = await t.fetch(`/files/stream?path=${encodeURIComponent(root)}&flatten=true`);
    assert.equal(res.status, 200);
    const lines = (await res.text()).split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines[0]?.event, 'start');
    const done = lines[lines.length - 1];
    assert.equal(done?.event, 'done');
    assert.equal(done?.count, 7);
    assert.equal(lines.filter((l) => !('event' in l)).length, 7);
    const missing = await t.fetch(`/files/stream?path=${encodeURIComponent(`${root}/zzz`)}`);
    assert.equal(missing.status, 404);
  });

  test('stat: file, directory, symlink', async () => {
    const f = await t.call('GET', `/files/stat?path=${encodeURIComponent(`${root}/src/index.ts`)}`);
    assert.equal(f.body.type, 'file');
    assert.equal(f.body.name, 'index.ts');
    assert.equal(f.body.size, 11);
    assert.equal(f.body.is_code, true);
    assert.equal(f.body.extension, 'ts');
    assert.match(f.body.permissions as string, /^0[0-7]{3}$/);
    const d = await t.call('GET', `/files/stat?path=${encodeURIComponent(`${root}/src`)}`);
    assert.equal(d.body.type, 'directory');
    const l = await t.call('GET', `/files/stat?path=${encodeURIComponent(`${root}/link`)}`);
    assert.equal(l.body.type, 'symlink');
    assert.equal(l.body.symlink_target, 'src/index.ts');
    assert.equal(l.body.target_type, 'file');
    assert.equal((await t.call('GET', `/files/stat?path=${encodeURIComponent(`${root}/none`)}`)).status, 404);
  });
});

describe('files mkdir / delete / move / copy', () => {
  test('mkdir creates parents, applies mode, is idempotent; a file in the way conflicts', async () => {
    const path = `${dir}/m/n/o`;
    const r = await t.call('POST', '/files/mkdir', { path, mode: '0700' });
    assert.deepEqual(r.body, { success: true, path });
    assert.ok((await stat(path)).isDirectory());
    assert.equal((await stat(path)).mode & 0o777, 0o700);
    assert.equal((await t.call('POST', '/files/mkdir', { path })).status, 200);
    await writeFile(`${dir}/afile`, 'x');
    const clash = await t.call('POST', '/files/mkdir', { path: `${dir}/afile` });
    assert.equal(clash.status, 409);
    assert.equal(clash.body.code, 'already_exists');
  });

  test('delete: recursive by default, path also as query, missing → 404, / refused', async () => {
    await mkdir(`${dir}/del/x/y`, { recursive: true });
    await writeFile(`${dir}/del/x/y/z.txt`, 'z');
    const r = await t.call('POST', '/files/delete', { path: `${dir}/del` });
    assert.deepEqual(r.body, { success: true, path: `${dir}/del` });
    await assert.rejects(lstat(`${dir}/del`));
    await writeFile(`${dir}/q.txt`, 'q');
    const viaQuery = await t.call('POST', `/files/delete?path=${encodeURIComponent(`${dir}/q.txt`)}`);
    assert.equal(viaQuery.status, 200);
    await assert.rejects(lstat(`${dir}/q.txt`));
    assert.equal((await t.call('POST', '/files/delete', { path: `${dir}/del` })).status, 404);
    assert.equal((await t.call('POST', '/files/delete', { path: '/' })).status, 400);
    await mkdir(`${dir}/keep/inner`, { recursive: true });
    const nonRec = await t.call('POST', '/files/delete', { path: `${dir}/keep`, recursive: false });
    assert.equal(nonRec.status, 409);
    assert.equal(nonRec.body.code, 'not_empty');
  });

  test('delete of a symlink removes the link, not its target', async () => {
    await writeFile(`${dir}/target.txt`, 't');
    await symlink(`${dir}/target.txt`, `${dir}/ln`);
    await t.call('POST', '/files/delete', { path: `${dir}/ln` });
    assert.equal(await readFile(`${dir}/target.txt`, 'utf8'), 't');
  });

  test('move and copy (recursive, symlinks verbatim, overwrite guarded)', async () => {
    await mkdir(`${dir}/mv/sub`, { recursive: true });
    await writeFile(`${dir}/mv/sub/f.txt`, 'f');
    await symlink('sub/f.txt', `${dir}/mv/l`);
    const cp = await t.call('POST', '/files/copy', { from: `${dir}/mv`, to: `${dir}/mv-copy/deeper` });
    assert.equal(cp.status, 200);
    assert.equal(await readFile(`${dir}/mv-copy/deeper/sub/f.txt`, 'utf8'), 'f');
    assert.equal(await readlink(`${dir}/mv-copy/deeper/l`), 'sub/f.txt');
    assert.equal(await readFile(`${dir}/mv/sub/f.txt`, 'utf8'), 'f');

    const clash = await t.call('POST', '/files/copy', { from: `${dir}/mv`, to: `${dir}/mv-copy/deeper` });
    assert.equal(clash.status, 409);
    assert.equal(clash.body.code, 'already_exists');

    const mv = await t.call('POST', '/files/move', { from: `${dir}/mv`, to: `${dir}/moved` });
    assert.equal(mv.body.success, true);
    await assert.rejects(lstat(`${dir}/mv`));
    assert.equal(await readFile(`${dir}/moved/sub/f.txt`, 'utf8'), 'f');

    await writeFile(`${dir}/one.txt`, '1');
    await writeFile(`${dir}/two.txt`, '2');
    assert.equal((await t.call('POST', '/files/move', { from: `${dir}/one.txt`, to: `${dir}/two.txt` })).status, 409);
    assert.equal((await t.call('POST', '/files/move', { from: `${dir}/one.txt`, to: `${dir}/two.txt`, overwrite: true })).status, 200);
    assert.equal(await readFile(`${dir}/two.txt`, 'utf8'), '1');

    assert.equal((await t.call('POST', '/files/move', { from: `${dir}/nope`, to: `${dir}/x` })).status, 404);
    const into = await t.call('POST', '/files/move', { from: `${dir}/moved`, to: `${dir}/moved/inside` });
    assert.equal(into.status, 400);
  });
});
