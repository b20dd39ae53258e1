/** Guest agent pure pieces: router, globs, exec argv, scrollback ring, upload entry checks, proxy targets. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from '../../src/agent/router.ts';
import { GlobSet, excludedWithAncestors } from '../../src/agent/files/glob.ts';
import { resolveArgv } from '../../src/agent/exec/argv.ts';
import { ByteRing } from '../../src/agent/terminals/ring.ts';
import { unsafeEntry } from '../../src/agent/transfer/upload.ts';
import { parseTargetSpec, resolveProxyTarget } from '../../src/agent/proxy/target.ts';
import { AGENT_ERROR_STATUS, AgentError, toAgentError } from '../../src/core/agent-protocol/errors.ts';

describe('router', () => {
  const r = new Router<string>();
  r.add('GET', '/exec/stream', 'stream');
  r.add('GET', '/exec/:taskId', 'get');
  r.add('POST', '/exec/:taskId/input', 'input');
  r.add('GET', '/files/search', 'search');
  r.add('GET', '/files/search/init', 'init');
  r.add('GET', '/a/b', 'ab');
  r.add('GET', '/a/:x/c', 'axc');

  const cases: [string, string, string | undefined, Record<string, string>?][] = [
    ['GET', '/exec/stream', 'stream'],
    ['GET', '/exec/12', 'get', { taskId: '12' }],
    ['POST', '/exec/12/input', 'input', { taskId: '12' }],
    ['GET', '/files/search', 'search'],
    ['GET', '/files/search/init', 'init'],
    ['GET', '/a/b', 'ab'],
    ['GET', '/a/b/c', 'axc', { x: 'b' }],
    ['GET', '/nope', undefined],
  ];
  for (const [method, path, want, params] of cases) {
    test(`${method} ${path} → ${want ?? 'not found'}`, () => {
      const m = r.match(method, path.split('/').filter(Boolean));
      if (want === undefined) assert.equal(m.kind, 'not_found');
      else {
        assert.equal(m.kind, 'found');
        if (m.kind === 'found') {
          assert.equal(m.handler, want);
          assert.deepEqual(m.params, params ?? {});
        }
      }
    });
  }
  test('wrong method is method_not_allowed with the allowed list', () => {
    assert.deepEqual(r.match('DELETE', ['exec', 'stream']), { kind: 'method_not_allowed', allowed: ['GET'] });
  });
  test('duplicate routes and conflicting param names are refused at registration', () => {
    assert.throws(() => r.add('GET', '/exec/stream', 'again'), /twice/);
    assert.throws(() => r.add('GET', '/exec/:other', 'x'), /conflicts/);
  });
});

describe('globs (gitignore semantics)', () => {
  const cases: [string, string, boolean, boolean][] = [
    // pattern, relative path, isDir, excluded?
    ['node_modules', 'a/node_modules', true, true],
    ['node_modules', 'node_modules', true, true],
    ['*.log', 'x/y/debug.log', false, true],
    ['*.log', 'x/y/debug.log.txt', false, false],
    ['/build', 'build', true, true],
    ['/build', 'src/build', true, false],
    ['src/*.ts', 'src/a.ts', false, true],
    ['src/*.ts', 'src/sub/a.ts', false, false],
    ['src/**/*.ts', 'src/sub/deep/a.ts', false, true],
    ['**/dist', 'a/b/dist', true, true],
    ['dist/', 'dist', false, false],
    ['dist/', 'dist', true, true],
    ['file?.txt', 'file1.txt', false, true],
    ['[ab].c', 'b.c', false, true],
    ['[!ab].c', 'b.c', false, false],
    ['*.{js,ts}', 'x.ts', false, true],
    ['a.b', 'axb', false, false],
  ];
  for (const [pattern, rel, isDir, want] of cases) {
    test(`${pattern} vs ${rel}${isDir ? '/' : ''} → ${want}`, () => {
      const name = rel.split('/').pop() as string;
      assert.equal(new GlobSet([pattern]).matches(rel, name, isDir), want);
    });
  }
  test('negation re-includes; last match wins', () => {
    const set = new GlobSet(['*.log', '!keep.log']);
    assert.equal(set.matches('a.log', 'a.log', false), true);
    assert.equal(set.matches('keep.log', 'keep.log', false), false);
  });
  test('ancestors: a directory pattern excludes everything below', () => {
    assert.equal(excludedWithAncestors(new GlobSet(['node_modules']), 'app/node_modules/x/y.js', false), true);
    assert.equal(excludedWithAncestors(new GlobSet(['node_modules']), 'app/src/y.js', false), false);
  });
  test('comments and blanks are ignored', () => {
    assert.equal(new GlobSet(['# c', '', '   ']).empty, true);
  });
});

describe('exec argv', () => {
  const cases: [string[], 'auto' | 'shell' | 'direct', { file: string; args: string[]; mode: string }][] = [
    [['ls', '-la'], 'auto', { file: 'ls', args: ['-la'], mode: 'direct' }],
    [['ls -la | wc -l'], 'auto', { file: '/bin/sh', args: ['-c', 'ls -la | wc -l'], mode: 'shell' }],
    [['node'], 'auto', { file: 'node', args: [], mode: 'direct' }],
    [['echo', 'a', '&&', 'echo', 'b'], 'auto', { file: '/bin/sh', args: ['-c', 'echo a && echo b'], mode: 'shell' }],
    [['echo', 'a b'], 'auto', { file: 'echo', args: ['a b'], mode: 'direct' }],
    [['echo', '$HOME'], 'shell', { file: '/bin/sh', args: ['-c', 'echo $HOME'], mode: 'shell' }],
    [['bash', '-c', 'echo hi'], 'shell', { file: 'bash', args: ['-c', 'echo hi'], mode: 'shell' }],
    [['echo hi'], 'direct', { file: 'echo hi', args: [], mode: 'direct' }],
  ];
  for (const [cmd, mode, want] of cases) {
    test(`${mode} ${JSON.stringify(cmd)}`, () => assert.deepEqual(resolveArgv(cmd, mode, '/bin/sh'), want));
  }
});

describe('scrollback ring', () => {
  test('keeps the newest bytes, in order, across wrap-around', () => {
    const r = new ByteRing(8);
    r.append(Buffer.from('abc'));
    r.append(Buffer.from('defgh'));
    assert.equal(r.tail().toString(), 'abcdefgh');
    r.append(Buffer.from('ij'));
    assert.equal(r.tail().toString(), 'cdefghij');
    assert.equal(r.tail(3).toString(), 'hij');
    r.append(Buffer.from('0123456789'));
    assert.equal(r.tail().toString(), '23456789');
    assert.equal(r.size, 8);
    r.resize(4);
    assert.equal(r.tail().toString(), '6789');
    r.clear();
    assert.equal(r.tail().length, 0);
  });
  test('many small appends equal one big one', () => {
    const r = new ByteRing(100);
    let all = '';
    for (let i = 0; i < 1000; i++) {
      const s = `${i},`;
      all += s;
      r.append(Buffer.from(s));
    }
    assert.equal(r.tail().toString(), all.slice(-100));
  });
});

describe('upload entry checks', () => {
  const cases: [Parameters<typeof unsafeEntry>[0], boolean][] = [
    [{ path: 'a/b.txt', type: 'File' }, false],
    [{ path: './a', type: 'File' }, false],
    [{ path: '../a', type: 'File' }, true],
    [{ path: 'a/../../b', type: 'File' }, true],
    [{ path: '/etc/passwd', type: 'File' }, true],
    [{ path: 'C:/x', type: 'File' }, true],
    [{ path: 'l', type: 'SymbolicLink', linkpath: 'a/b' }, false],
    [{ path: 'd/l', type: 'SymbolicLink', linkpath: '../x' }, false],
    [{ path: 'd/l', type: 'SymbolicLink', linkpath: '../../x' }, true],
    [{ path: 'l', type: 'SymbolicLink', linkpath: '/etc' }, true],
    [{ path: 'h', type: 'Link', linkpath: 'a/b' }, false],
    [{ path: 'd/h', type: 'Link', linkpath: '../b' }, true],
  ];
  for (const [entry, unsafe] of cases) {
    test(`${entry.type} ${entry.path}${entry.linkpath ? ` → ${entry.linkpath}` : ''}: ${unsafe ? 'rejected' : 'allowed'}`, () => {
      assert.equal(unsafeEntry(entry) !== undefined, unsafe);
    });
  }
});

describe('proxy targets', () => {
  test('specs', () => {
    assert.deepEqual(parseTargetSpec('3000'), { host: '127.0.0.1', port: 3000 });
    assert.deepEqual(parseTargetSpec('localhost:80'), { host: 'localhost', port: 80 });
    assert.deepEqual(parseTargetSpec('[::1]:8080'), { host: '::1', port: 8080 });
    assert.deepEqual(parseTargetSpec('127.0.0.2:1'), { host: '127.0.0.2', port: 1 });
    for (const bad of ['0', '65536', 'x', 'example.com:80', '10.0.0.1:80', '']) assert.throws(() => parseTargetSpec(bad), AgentError, bad);
  });
  test('path and query', () => {
    const q = new URLSearchParams('a=1&token=s&x_oblien_target=9');
    assert.deepEqual(resolveProxyTarget('/p', q, undefined), { host: '127.0.0.1', port: 9, path: '/p?a=1' });
    assert.deepEqual(resolveProxyTarget('/3000/x/y', new URLSearchParams(), undefined), { host: '127.0.0.1', port: 3000, path: '/x/y' });
    assert.deepEqual(resolveProxyTarget('', new URLSearchParams(), '5'), { host: '127.0.0.1', port: 5, path: '/' });
  });
});

describe('errors', () => {
  test('every code has a 4xx/5xx status and renders the §2.1 body', () => {
    for (const [code, status] of Object.entries(AGENT_ERROR_STATUS)) {
      assert.ok(status >= 400 && status < 600, code);
      const body = new AgentError(code as keyof typeof AGENT_ERROR_STATUS, 'm').toBody();
      assert.deepEqual(body, { success: false, error: code, code, message: 'm' });
    }
  });
  test('errno mapping', () => {
    const e = Object.assign(new Error('x'), { code: 'ENOENT', path: '/a' });
    assert.equal(toAgentError(e).code, 'not_found');
    assert.equal(toAgentError(e).status, 404);
    assert.equal(toAgentError(Object.assign(new Error('x'), { code: 'EISDIR' })).status, 400);
    assert.equal(toAgentError(new Error('boom')).code, 'server_error');
  });
});
