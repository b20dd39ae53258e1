/** Guest agent: built-in content and file-name search (spec §22.4). */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { startTestAgent, withTempDir, type TestAgent } from '../helpers/agent-harness.ts';

let t: TestAgent;
let dir: string;
let cleanup: () => Promise<void>;
let root: string;

type Match = { line: number; column: number; text: string; before?: string[]; after?: string[] };

before(async () => {
  t = await startTestAgent();
  ({ dir, cleanup } = await withTempDir());
  root = `${dir}/proj`;
  await mkdir(`${root}/src`, { recursive: true });
  await mkdir(`${root}/.hidden`, { recursive: true });
  await mkdir(`${root}/ignored`, { recursive: true });
  await mkdir(`${root}/node_modules/x`, { recursive: true });
  await writeFile(`${root}/src/a.ts`, 'const foo = 1;\nfunction fooBar() {}\n// FOO here\nnothing\n');
  await writeFile(`${root}/src/b.py`, 'foo = 2\n');
  await writeFile(`${root}/src/dots.txt`, 'axb\na.b\n');
  await writeFile(`${root}/.hidden/h.ts`, 'foo hidden\n');
  await writeFile(`${root}/ignored/i.ts`, 'foo ignored\n');
  await writeFile(`${root}/node_modules/x/index.js`, 'foo in deps\n');
  await writeFile(`${root}/.gitignore`, 'ignored/\nnode_modules\n');
  await writeFile(`${root}/src/bin.dat`, Buffer.concat([Buffer.from('foo'), Buffer.alloc(10), Buffer.from('foo')]));
});
after(async () => {
  await t.close();
  await cleanup();
});

async function search(params: Record<string, string>): Promise<Record<string, unknown>> {
  const qs = new URLSearchParams({ path: root, ...params }).toString();
  const r = await t.call('GET', `/files/search?${qs}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

const rel = (results: unknown): Record<string, number[]> =>
  Object.fromEntries(Object.entries(results as Record<string, Match[]>).map(([p, ms]) => [p.slice(root.length + 1), ms.map((m) => m.line)]));

describe('content search', () => {
  test('literal, case-insensitive by default; hidden, gitignored and binary files skipped', async () => {
    const r = await search({ q: 'foo' });
    assert.deepEqual(rel(r.results), { 'src/a.ts': [1, 2, 3], 'src/b.py': [1] });
    assert.equal(r.total_matches, 4);
    assert.equal(r.total_files, 2);
    assert.equal(r.capped, false);
    assert.equal(r.query, 'foo');
    assert.equal(r.path, root);
    const first = (r.results as Record<string, Match[]>)[`${root}/src/a.ts`]?.[0];
    assert.deepEqual(first, { line: 1, column: 7, text: 'const foo = 1;' });
    assert.deepEqual((r.matches as unknown[])[0], { path: `${root}/src/a.ts`, line_number: 1, line: 'const foo = 1;', column: 7 });
  });

  test('case_sensitive, whole_word, regex', async () => {
    assert.deepEqual(rel((await search({ q: 'foo', case_sensitive: 'true' })).results), { 'src/a.ts': [1, 2], 'src/b.py': [1] });
    assert.deepEqual(rel((await search({ q: 'foo', whole_word: 'true' })).results), { 'src/a.ts': [1, 3], 'src/b.py': [1] });
    const re = await search({ q: 'foo\\w+', regex: 'true' });
    assert.deepEqual(rel(re.results), { 'src/a.ts': [2] });
    assert.equal((re.results as Record<string, Match[]>)[`${root}/src/a.ts`]?.[0]?.column, 10);
    assert.deepEqual(rel((await search({ q: 'a.b' })).results), { 'src/dots.txt': [2] }, 'literal dot is not a wildcard');
    assert.deepEqual(rel((await search({ q: 'a.b', regex: 'true' })).results), { 'src/dots.txt': [1, 2] });
  });

  test('context lines, file types, hidden, no_gitignore, ignore_patterns', async () => {
    const ctx = await search({ q: 'fooBar', context_lines: '1' });
    assert.deepEqual((ctx.results as Record<string, Match[]>)[`${root}/src/a.ts`], [
      { line: 2, column: 10, text: 'function fooBar() {}', before: ['const foo = 1;'], after: ['// FOO here'] },
    ]);
    assert.deepEqual(rel((await search({ q: 'foo', file_types: 'py' })).results), { 'src/b.py': [1] });
    assert.deepEqual(Object.keys(rel((await search({ q: 'foo', file_types: 'ts' })).results)), ['src/a.ts']);
    assert.ok('.hidden/h.ts' in rel((await search({ q: 'foo', include_hidden: 'true' })).results));
    const noIgnore = rel((await search({ q: 'foo', no_gitignore: 'true' })).results);
    assert.ok('ignored/i.ts' in noIgnore && 'node_modules/x/index.js' in noIgnore);
    assert.deepEqual(rel((await search({ q: 'foo', ignore_patterns: 'src' })).results), {});
  });

  test('max_results caps and says so', async () => {
    const r = await search({ q: 'foo', max_results: '2' });
    assert.equal(r.total_matches, 2);
    assert.equal(r.capped, true);
  });

  test('POST with a JSON body works like GET', async () => {
    const r = await t.call('POST', '/files/search', { q: 'fooBar', path: root });
    assert.deepEqual(rel(r.body.results), { 'src/a.ts': [2] });
  });

  test('errors: missing q, invalid regex, missing path', async () => {
    assert.equal((await t.call('GET', `/files/search?path=${root}`)).status, 400);
    const bad = await t.call('GET', `/files/search?path=${root}&q=${encodeURIComponent('(')}&regex=true`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'validation_error');
    assert.equal((await t.call('GET', `/files/search?path=${root}/nope&q=x`)).status, 404);
  });
});

describe('file-name search and engine status', () => {
  test('substring and glob, case-insensitive by default', async () => {
    const sub = await t.call('GET', `/files/search/files?path=${root}&q=A.T`);
    assert.deepEqual(sub.body.files, [`${root}/src/a.ts`]);
    assert.equal(sub.body.total_files, 1);
    const glob = await t.call('GET', `/files/search/files?path=${root}&q=*.py`);
    assert.deepEqual(glob.body.files, [`${root}/src/b.py`]);
    const cs = await t.call('GET', `/files/search/files?path=${root}&q=A.T&case_sensitive=true`);
    assert.deepEqual(cs.body.files, []);
    const hidden = await t.call('GET', `/files/search/files?path=${root}&q=h.ts&include_hidden=true`);
    assert.deepEqual(hidden.body.files, [`${root}/.hidden/h.ts`]);
  });

  test('init: GET and POST answer the built-in engine', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await t.call(method, '/files/search/init');
      assert.equal(r.body.success, true);
      assert.equal(r.body.installed, true);
      assert.equal(r.body.version, 'hearth-builtin');
    }
  });
});

test('10 000 files: every planted match found, nothing else', async () => {
  const big = `${dir}/big`;
  const planted = new Set<string>();
  for (let d = 0; d < 100; d++) {
    await mkdir(`${big}/d${d}`, { recursive: true });
    const writes: Promise<void>[] = [];
    for (let f = 0; f < 100; f++) {
      const n = d * 100 + f;
      const hit = n % 271 === 0;
      const path = `${big}/d${d}/f${f}.txt`;
      if (hit) planted.add(path);
      writes.push(writeFile(path, `line one ${n}\n${hit ? 'the NEEDLE is here' : 'hay'}\nlast\n`));
    }
    await Promise.all(writes);
  }
  const started = Date.now();
  const r = await t.call('GET', `/files/search?path=${big}&q=needle&max_results=1000`);
  const ms = Date.now() - started;
  assert.equal(r.body.total_files, planted.size);
  assert.deepEqual(new Set(Object.keys(r.body.results as object)), planted);
  assert.equal(r.body.files_scanned, 10_000);
  const names = await t.call('GET', `/files/search/files?path=${big}&q=f99.txt`);
  assert.equal(names.body.total_files, 100);
  // Speed is measured, not asserted (bench/ owns timing); printed for the record.
  console.log(`# search over 10000 files took ${ms} ms`);
});
