import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImageReferenceError, familiarReference, formatReference, isLoopbackRegistry, manifestReference, parseReference } from '../../src/host/images/oci/reference.ts';
import { toHttpError } from '../../src/api/errors.ts';

const D = `sha256:${'a'.repeat(64)}`;

test('references normalize as Docker does', () => {
  const cases: Array<[string, string, boolean]> = [
    ['python', 'docker.io/library/python:latest', false],
    ['python:3.12-slim', 'docker.io/library/python:3.12-slim', false],
    ['org/app:1.0', 'docker.io/org/app:1.0', false],
    ['docker.io/library/python:3', 'docker.io/library/python:3', true],
    ['index.docker.io/library/python:3', 'docker.io/library/python:3', true],
    ['ghcr.io/org/app:tag', 'ghcr.io/org/app:tag', true],
    [`ghcr.io/org/app:tag@${D}`, `ghcr.io/org/app:tag@${D}`, true],
    [`127.0.0.1:5000/a/b/c@${D}`, `127.0.0.1:5000/a/b/c@${D}`, true],
    ['localhost/app', 'localhost/app:latest', true],
    ['localhost:5000/app:v1', 'localhost:5000/app:v1', true],
    ['[::1]:5000/app', '[::1]:5000/app:latest', true],
    ['my-registry.example.com:443/x__y/z.w-1:A_b.c-D', 'my-registry.example.com:443/x__y/z.w-1:A_b.c-D', true],
    ['  python:3  ', 'docker.io/library/python:3', false],
  ];
  for (const [input, want, explicit] of cases) {
    const r = parseReference(input);
    assert.equal(formatReference(r), want, input);
    assert.equal(r.explicitRegistry, explicit, input);
  }
  assert.equal(familiarReference(parseReference('docker.io/library/python:3')), 'python:3');
  assert.equal(familiarReference(parseReference('org/app:1')), 'org/app:1');
  assert.equal(familiarReference(parseReference('ghcr.io/org/app:1')), 'ghcr.io/org/app:1');
  assert.equal(manifestReference(parseReference(`a:1@${D}`)), D, 'a digest wins over the tag');
  assert.equal(manifestReference(parseReference('a')), 'latest');
});

test('malformed references are refused with the reason, as validation errors', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /it is empty/],
    ['a b', /white space/],
    ['Python', /must be lowercase/],
    ['ghcr.io/Org/app', /must be lowercase/],
    ['app:-x', /tag "-x"/],
    [`app:${'x'.repeat(129)}`, /tag/],
    ['app@sha256:123', /not <algorithm>:<hex>/],
    [`app@sha512:${'a'.repeat(128)}`, /only sha256 digests/],
    ['a//b', /empty component/],
    ['a/b/', /empty component/],
    ['bad_host:99999/app', /registry host "bad_host:99999"/],
    ['a/..b', /repository component/],
    ['a/b:c:d', /registry host|tag|component/],
    [`${'a'.repeat(250)}/b`, /longer than 255/],
  ];
  for (const [input, why] of cases) {
    assert.throws(() => parseReference(input), (e: unknown) => {
      assert.ok(e instanceof ImageReferenceError, input);
      assert.match(e.message, why, input);
      assert.ok(e.message.startsWith(`invalid image reference ${JSON.stringify(input)}: `));
      assert.equal(toHttpError(e).code, 'validation_error');
      return true;
    });
  }
});

test('loopback registries are the ones spoken to over plain HTTP by default', () => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:80']) assert.equal(isLoopbackRegistry(h), true, h);
  for (const h of ['ghcr.io', '10.0.0.1:5000', 'localhost.example.com', 'docker.io']) assert.equal(isLoopbackRegistry(h), false, h);
});
