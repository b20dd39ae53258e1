import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CATALOG, IMAGE_ENV, LAYERS, buildOrder, findRecipe, validateCatalog, type ImageRecipe } from '../../src/host/images/catalog.ts';
import { ImageNotBuiltError, UnknownImageError } from '../../src/host/images/errors.ts';
import { Unavailable, ValidationFailed } from '../../src/core/errors.ts';
import { toHttpError } from '../../src/api/errors.ts';

test('the catalog is consistent: unique names, existing layers, stacks that match their bases', () => {
  assert.deepEqual(validateCatalog(), []);
});

test('validateCatalog catches clashing names and wrong stacks', () => {
  const bad: ImageRecipe[] = [
    { ...CATALOG[0]!, id: 'a', aliases: ['x'] },
    { ...CATALOG[0]!, id: 'b', ref: 'hearth/b:1', aliases: ['x'] },
    { ...CATALOG[1]!, id: 'c', ref: 'hearth/c:1', aliases: [], layers: ['node-20', 'python-3.11'] },
    { ...CATALOG[0]!, id: 'd', ref: 'hearth/d:1', aliases: ['Upper'], layers: ['nope'] },
    { ...CATALOG[0]!, id: 'e', ref: 'hearth/e:1', aliases: [], layers: ['debian-12', 'python-3.11'] },
  ];
  assert.deepEqual(validateCatalog(bad), [
    'name x used by a and b',
    'c: layer node-20 must sit on debian-12',
    'd: name Upper is not normalized',
    'd: unknown layer nope',
    'e: debian-12 is a full rootfs and must be the bottom layer',
  ]);
});

test('images resolve by id, ref and alias, case-insensitively', () => {
  const cases: Array<[string, string | undefined]> = [
    ['debian-12', 'debian-12'], ['hearth/debian:12', 'debian-12'], ['debian', 'debian-12'], ['DEBIAN-12', 'debian-12'],
    ['node-20', 'node-20'], ['hearth/node:20', 'node-20'], ['node', 'node-20'], [' node-20 ', 'node-20'],
    ['python-3.11', 'python-3.11'], ['hearth/python:3.11', 'python-3.11'], ['python-3', 'python-3.11'], ['python', 'python-3.11'],
    ['docker.io/hearth/node:20', 'node-20'],
    // Names must tell the truth: bookworm has no Python 3.12 and no Node 22.
    ['python-3.12', undefined], ['node-22', undefined], ['ubuntu', undefined], ['', undefined],
  ];
  for (const [name, id] of cases) assert.equal(findRecipe(name)?.id, id, JSON.stringify(name));
});

test('the images promise what their names say', () => {
  const expects = Object.fromEntries(CATALOG.map((r) => [r.id, r.expect]));
  assert.deepEqual(expects, {
    'debian-12': { debian: '12.' },
    'node-20': { debian: '12.', node: '20.' },
    'python-3.11': { debian: '12.', python: '3.11.' },
    'go-1.22': { debian: '12.', go: '1.22.' },
    'rust-1': { debian: '13.', rust: '1.', cargo: '1.' },
    'postgres-16': { debian: '12.', postgres: '16.' },
  });
  for (const r of CATALOG) for (const k of Object.keys(r.expect)) assert.ok(r.origin[k], `${r.id}: where ${k} comes from`);
});

test('node-20 is a layer on debian-12 and builds its base first', () => {
  assert.deepEqual(findRecipe('node-20')!.layers, ['node-20', 'debian-12']);
  assert.deepEqual(buildOrder(findRecipe('node-20')!).map((l) => l.name), ['debian-12', 'node-20']);
  assert.deepEqual(buildOrder(findRecipe('python-3.11')!).map((l) => l.name), ['python-3.11']);
  const python = LAYERS['python-3.11'];
  assert.ok(python?.kind === 'debian' && python.packages.includes('python3'));
});

test('image config is the documented default', () => {
  assert.deepEqual(IMAGE_ENV, [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'HOME=/root',
    'LANG=C.UTF-8',
    'TERM=xterm-256color',
  ]);
});

test('an unknown image names itself and lists what is available', () => {
  const e = new UnknownImageError('python-3.12', ['debian-12', 'node-20']);
  assert.equal(e.message, 'unknown image "python-3.12"');
  assert.equal(e.hint, 'available images: debian-12, node-20');
  assert.ok(e instanceof ValidationFailed);
  const http = toHttpError(e);
  assert.equal(http.code, 'validation_error');
  assert.equal(http.hint, 'available images: debian-12, node-20');

  const none = new UnknownImageError('x', [], ['debian-12', 'node-20']);
  assert.equal(none.hint, 'no image is built on this host yet: run `hearth setup` (catalog: debian-12, node-20)');
});

test('a catalog image that is not built says how to build it', () => {
  const e = new ImageNotBuiltError('node-20');
  assert.equal(e.message, 'image "node-20" is not built on this host');
  assert.equal(e.hint, 'run `hearth setup --images node-20` (as root) to build it');
  assert.ok(e instanceof Unavailable);
  assert.equal(toHttpError(e).code, 'workspace_unavailable');
});
