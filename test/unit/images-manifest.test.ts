import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkExpectedVersions, parseDpkgStatus, parseImageManifest, pythonVersion, upstreamVersion, ManifestError, type ImageManifest,
} from '../../src/host/images/manifest.ts';

const good: ImageManifest = {
  schema: 1,
  id: 'node-20',
  ref: 'hearth/node:20',
  layers: ['layers/node-20-aaaa/rootfs', 'layers/debian-12-bbbb/rootfs'],
  layer_digests: [`sha256:${'a'.repeat(64)}`, `sha256:${'b'.repeat(64)}`],
  env: ['HOME=/root'],
  workingDir: '/root',
  user: 'root',
  digest: `sha256:${'c'.repeat(64)}`,
  versions: { debian: '12.11', node: '20.20.2' },
  built_at: '2025-01-01T00:00:00.000Z',
  recipe_version: 1,
};

test('a valid manifest parses as is', () => {
  assert.deepEqual(parseImageManifest(JSON.stringify(good)), good);
});

test('a broken manifest names the bad field', () => {
  const cases: Array<[unknown, RegExp]> = [
    ['{', /not JSON/],
    [null, /not an object/],
    [{ ...good, schema: 2 }, /schema/],
    [{ ...good, id: '' }, /missing or invalid id/],
    [{ ...good, layers: [] }, /layers/],
    [{ ...good, layer_digests: [good.layer_digests[0]] }, /layer_digests/],
    [{ ...good, versions: { node: 20 } }, /versions/],
    [{ ...good, digest: 'md5:x' }, /digest/],
    [{ ...good, env: 'HOME=/root' }, /env/],
  ];
  for (const [value, re] of cases) {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    assert.throws(() => parseImageManifest(text, 'images/x.json'), (e: unknown) => e instanceof ManifestError && re.test(e.message) && e.message.startsWith('images/x.json: '), text);
  }
});

const STATUS = `Package: python3.11
Status: install ok installed
Priority: optional
Version: 3.11.2-6+deb12u6
Description: Interactive high-level object-oriented language (version 3.11)
 Python is a high-level, interactive, object-oriented language.

Package: python3
Status: install ok installed
Version: 3.11.2-1+b1

Package: python3.9
Status: deinstall ok config-files
Version: 3.9.2-1

Package: python3-pip
Status: install ok installed
Version: 23.0.1+dfsg-1

Package: bash
Status: install ok installed
Version: 5.2.15-2+b8
`;

test('dpkg status gives installed packages only', () => {
  const pkgs = parseDpkgStatus(STATUS);
  assert.deepEqual([...pkgs.keys()].sort(), ['bash', 'python3', 'python3-pip', 'python3.11']);
  assert.equal(pkgs.get('python3.11'), '3.11.2-6+deb12u6');
  assert.equal(pythonVersion(pkgs), '3.11.2');
  assert.equal(pythonVersion(new Map([['bash', '5']])), undefined);
});

test('upstream versions drop epoch, Debian revision and repack suffixes', () => {
  const cases: Array<[string, string]> = [
    ['3.11.2-6+deb12u6', '3.11.2'], ['1:3.11.2-1+b1', '3.11.2'], ['23.0.1+dfsg-1', '23.0.1'],
    ['5.2.15-2+b8', '5.2.15'], ['2.36.1', '2.36.1'], ['1.0~rc1-2', '1.0~rc1'], ['9.4p1-1+deb12u1', '9.4p1'],
  ];
  for (const [input, want] of cases) assert.equal(upstreamVersion(input), want, input);
});

test('built versions are checked against the name', () => {
  assert.deepEqual(checkExpectedVersions({ debian: '12.11', python: '3.11.2' }, { debian: '12.', python: '3.11.' }), []);
  assert.deepEqual(checkExpectedVersions({ debian: '12' }, { debian: '12.' }), []);
  assert.deepEqual(checkExpectedVersions({ debian: '12.11', python: '3.13.1' }, { python: '3.11.' }), ['python: found 3.13.1, the image name promises 3.11.*']);
  assert.deepEqual(checkExpectedVersions({ node: '200.1.0' }, { node: '20.' }), ['node: found 200.1.0, the image name promises 20.*']);
  assert.deepEqual(checkExpectedVersions({}, { node: '20.' }), ['node: not found in the built tree (expected 20.*)']);
});
