import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  forwardedAptOptions, hostSources, parseAptConfigDump, parseDeb822Sources, parseOneLineSources, renderDeb822,
  extraPockets, retargetSources, selectSources, sourcesIdentity, suiteBelongs, NoSourcesError,
} from '../../src/host/images/sources.ts';

// The shape of this host's /etc/apt/sources.list.d/debian.sources (mirror names are the file's business, not ours).
const DEB822 = `Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://mirror.example/debian
Suites: bookworm-backports
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
`;

test('deb822 sources parse with comments, several stanzas and Enabled', () => {
  const s = parseDeb822Sources(DEB822, 'debian.sources');
  assert.equal(s.length, 5);
  assert.deepEqual(s[0], {
    origin: 'debian.sources#1',
    types: ['deb'],
    uris: ['http://mirror.example/debian'],
    suites: ['bookworm', 'bookworm-updates'],
    components: ['main'],
    enabled: true,
    extra: [['Signed-By', '/usr/share/keyrings/debian-archive-keyring.gpg']],
  });
  assert.equal(s[4]!.enabled, false);
});

test('an inline Signed-By key keeps its continuation lines', () => {
  const s = parseDeb822Sources('Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n');
  assert.equal(s[0]!.extra[0]![1], '\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----');
  assert.match(renderDeb822(s), /Signed-By: \n -----BEGIN PGP PUBLIC KEY BLOCK-----\n \.\n abc\n/);
});

test('one-line sources parse with options', () => {
  const s = parseOneLineSources('# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main contrib\ndeb-src http://m/debian bookworm main\ndeb http://n/node nodistro main # trailing\n', 'x.list');
  assert.deepEqual(s.map((e) => [e.types[0], e.suites[0], e.components, e.extra]), [
    ['deb', 'bookworm', ['main', 'contrib'], [['Architectures', 'amd64'], ['Signed-By', '/k.gpg']]],
    ['deb-src', 'bookworm', ['main'], []],
    ['deb', 'nodistro', ['main'], []],
  ]);
});

test('suite pockets: updates and security belong, backports and other suites do not', () => {
  const cases: Array<[string, boolean]> = [
    ['bookworm', true], ['bookworm-updates', true], ['bookworm-security', true], ['bookworm-backports', false],
    ['bookworm-proposed-updates', false], ['trixie', false], ['nodistro', false], ['bookworm2', false],
  ];
  for (const [suite, want] of cases) assert.equal(suiteBelongs(suite, 'bookworm'), want, suite);
});

test('only enabled binary sources of the suite are selected and rendered for mmdebstrap', () => {
  const selected = selectSources(parseDeb822Sources(DEB822), 'bookworm');
  assert.equal(renderDeb822(selected), `Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`);
  assert.deepEqual(sourcesIdentity(selected), ['bookworm-security/main', 'bookworm-updates/main', 'bookworm/main']);
});

test('the identity of sources does not depend on the mirror', () => {
  const other = DEB822.replaceAll('mirror.example', 'elsewhere.example');
  assert.deepEqual(
    sourcesIdentity(selectSources(parseDeb822Sources(other), 'bookworm')),
    sourcesIdentity(selectSources(parseDeb822Sources(DEB822), 'bookworm')),
  );
});

test('apt options that affect fetching are forwarded', () => {
  const dump = parseAptConfigDump('APT "";\nAcquire::Check-Valid-Until "false";\nAcquire::http::Proxy "http://proxy:3128";\nAcquire::Retries "3";\n');
  assert.deepEqual(forwardedAptOptions(dump), ['Acquire::http::Proxy "http://proxy:3128";', 'Acquire::Check-Valid-Until "false";']);
});

test('hostSources reads sources.list and sources.list.d, ignoring other file names', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-apt-'));
  try {
    await fs.mkdir(path.join(dir, 'sources.list.d'));
    await fs.writeFile(path.join(dir, 'sources.list.d', 'debian.sources'), DEB822);
    await fs.writeFile(path.join(dir, 'sources.list.d', 'node.sources.disabled-by-farm'), 'Types: deb\nURIs: http://x\nSuites: bookworm\nComponents: main\n');
    await fs.writeFile(path.join(dir, 'sources.list'), 'deb http://old.example/debian bookworm contrib\n');
    const s = await hostSources('bookworm', dir);
    assert.deepEqual(s.files, [path.join(dir, 'sources.list'), path.join(dir, 'sources.list.d', 'debian.sources')]);
    assert.deepEqual(s.identity, ['bookworm-security/main', 'bookworm-updates/main', 'bookworm/contrib', 'bookworm/main']);
    assert.ok(!s.text.includes('http://x'));
    await assert.rejects(hostSources('trixie', dir), (e: unknown) => e instanceof NoSourcesError && /no enabled apt source for suite trixie/.test(e.message));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('another release and extra pockets come from the host\'s own archive stanzas, same mirror and keyring', () => {
  const host = parseDeb822Sources([
    'Types: deb', 'URIs: http://deb.debian.org/debian', 'Suites: bookworm bookworm-updates', 'Components: main', 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg', '',
    'Types: deb', 'URIs: http://deb.debian.org/debian-security', 'Suites: bookworm-security', 'Components: main', 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
  ].join('\n'), 'debian.sources');
  const trixie = retargetSources(host, 'bookworm', 'trixie');
  assert.deepEqual(trixie.map((s) => [s.uris[0], s.suites]), [
    ['http://deb.debian.org/debian', ['trixie', 'trixie-updates']], ['http://deb.debian.org/debian-security', ['trixie-security']],
  ]);
  assert.ok(trixie.every((s) => s.extra.some(([k]) => k === 'Signed-By')));
  const bpo = extraPockets(selectSources(host, 'bookworm'), 'bookworm', ['bookworm-backports']);
  assert.deepEqual(bpo.map((s) => [s.uris[0], s.suites]), [['http://deb.debian.org/debian', ['bookworm-backports']]]);
  assert.deepEqual(sourcesIdentity([...selectSources(host, 'bookworm'), ...bpo]), ['bookworm-backports/main', 'bookworm-security/main', 'bookworm-updates/main', 'bookworm/main']);
});
