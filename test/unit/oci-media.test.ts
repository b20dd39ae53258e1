import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ImageFormatError, MEDIA, checkLayersMatchConfig, layerCompression, parseImageConfig, parseManifestDoc, selectPlatform, type IndexDoc,
} from '../../src/host/images/oci/media.ts';
import { parseChallenge, parseDockerAuths, registryBaseUrl, registryConfig, tokenUrl } from '../../src/host/images/oci/auth.ts';
import { registryErrorCode } from '../../src/host/images/oci/registry.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;

test('manifests and indexes parse by media type; schema 1 and junk are refused', () => {
  const m = parseManifestDoc(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.dockerManifest, config: { mediaType: MEDIA.dockerConfig, digest: d('a'), size: 10 }, layers: [{ mediaType: MEDIA.dockerLayerGzip, digest: d('b'), size: 20 }] }));
  assert.equal(m.kind, 'manifest');
  assert.equal(m.kind === 'manifest' && m.layers[0]!.size, 20);
  // OCI allows the media type to come only from Content-Type.
  const idx = parseManifestDoc(JSON.stringify({ schemaVersion: 2, manifests: [{ digest: d('c'), size: 5, platform: { os: 'linux', architecture: 'amd64' } }] }), `${MEDIA.ociIndex}; charset=utf-8`);
  assert.equal(idx.kind, 'index');
  assert.throws(() => parseManifestDoc('{"schemaVersion":1,"fsLayers":[]}'), /schema 1 manifest/);
  assert.throws(() => parseManifestDoc('not json'), ImageFormatError);
  assert.throws(() => parseManifestDoc(JSON.stringify({ schemaVersion: 2, config: { digest: 'md5:x', size: 1 }, layers: [] })), /no sha256 digest/);
  assert.throws(() => parseManifestDoc(JSON.stringify({ schemaVersion: 2, config: { digest: d('a'), size: -1 }, layers: [] })), /invalid size/);
});

test('an index narrows to linux/amd64, never to an attestation, and says what it offers otherwise', () => {
  const index: IndexDoc = {
    kind: 'index', mediaType: MEDIA.ociIndex,
    manifests: [
      { mediaType: MEDIA.ociManifest, digest: d('1'), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MEDIA.ociManifest, digest: d('2'), size: 1, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
      { mediaType: MEDIA.ociManifest, digest: d('3'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  };
  assert.equal(selectPlatform(index).digest, d('3'));
  assert.throws(() => selectPlatform({ ...index, manifests: index.manifests.slice(0, 2) }), /no linux\/amd64 variant \(it offers: linux\/arm64\/v8\)/);
});

test('layer media types map to a compression, zstd and unknown ones are refused with a hint', () => {
  assert.equal(layerCompression(MEDIA.ociLayerGzip), 'gzip');
  assert.equal(layerCompression(MEDIA.dockerLayerGzip), 'gzip');
  assert.equal(layerCompression(MEDIA.ociLayer), 'none');
  assert.throws(() => layerCompression(MEDIA.ociLayerZstd), (e: ImageFormatError) => /zstd/.test(e.message) && /gzip/.test(e.hint ?? ''));
  assert.throws(() => layerCompression('application/x-foo'), /unsupported layer media type/);
});

test('the image config gives env, command, working dir, user and diff_ids', () => {
  const c = parseImageConfig(JSON.stringify({
    architecture: 'amd64', os: 'linux',
    config: { Env: ['PATH=/bin', 'A=1'], Entrypoint: ['/init'], Cmd: ['serve'], WorkingDir: '/app', User: '1000:1000', Labels: { 'org.opencontainers.image.version': '1.2' }, ExposedPorts: { '80/tcp': {} } },
    rootfs: { type: 'layers', diff_ids: [d('e')] },
  }));
  assert.deepEqual([c.env, c.entrypoint, c.cmd, c.workingDir, c.user, c.diffIds, c.exposedPorts], [['PATH=/bin', 'A=1'], ['/init'], ['serve'], '/app', '1000:1000', [d('e')], ['80/tcp']]);
  const bare = parseImageConfig(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] } }));
  assert.deepEqual([bare.workingDir, bare.user, bare.cmd, bare.entrypoint], ['/', 'root', null, null], 'Docker defaults');
  assert.throws(() => parseImageConfig(JSON.stringify({ config: { Env: ['NOEQUALS'] }, rootfs: { type: 'layers', diff_ids: [] } })), /not KEY=value/);
  assert.throws(() => parseImageConfig(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ['x'] } })), /not a sha256 digest/);
  assert.throws(() => parseImageConfig('{}'), /rootfs.type/);
  const manifest = { kind: 'manifest' as const, mediaType: MEDIA.ociManifest, config: { mediaType: '', digest: d('a'), size: 1 }, layers: [] };
  assert.throws(() => checkLayersMatchConfig(manifest, c), /lists 0 layers but the config has 1/);
  assert.throws(() => checkLayersMatchConfig({ ...manifest, layers: [{ mediaType: '', digest: d('b'), size: 1 }] }, { ...c, architecture: 'arm64' }), /for arm64, not amd64/);
});

test('registry policy from the environment; challenges and credentials parse', () => {
  const none = registryConfig({});
  assert.deepEqual([none.dockerHub, none.mirror, none.catalogSource, none.timeoutMs], [false, null, 'auto', 30_000], 'no Docker Hub unless asked: an offline host never calls out');
  const mirrored = registryConfig({ HEARTH_REGISTRY_MIRROR: 'http://127.0.0.1:5000/', HEARTH_REGISTRY_TIMEOUT_MS: '1500', HEARTH_INSECURE_REGISTRIES: 'reg.lan:5000, Other.Lan' });
  assert.deepEqual([mirrored.dockerHub, mirrored.mirror, mirrored.timeoutMs, mirrored.insecure], [true, 'http://127.0.0.1:5000', 1500, ['reg.lan:5000', 'other.lan']]);
  assert.throws(() => registryConfig({ HEARTH_REGISTRY_MIRROR: 'ftp://x' }), /base URL/);
  assert.throws(() => registryConfig({ HEARTH_CATALOG_SOURCE: 'sometimes' }), /auto, offline or registry/);
  assert.equal(registryBaseUrl('docker.io', mirrored), 'http://127.0.0.1:5000');
  assert.equal(registryBaseUrl('docker.io', none), 'https://registry-1.docker.io');
  assert.equal(registryBaseUrl('reg.lan:5000', mirrored), 'http://reg.lan:5000');
  assert.equal(registryBaseUrl('ghcr.io', mirrored), 'https://ghcr.io');
  assert.equal(registryBaseUrl('127.0.0.1:5000', none), 'https://127.0.0.1:5000', 'an unlisted loopback registry is not spoken to over plain http (and is refused by the outbound policy)');
  assert.equal(registryBaseUrl('127.0.0.1:5000', registryConfig({ HEARTH_PRIVATE_REGISTRIES: '127.0.0.1:5000' })), 'http://127.0.0.1:5000', 'a listed loopback registry is');

  const ch = parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"')!;
  assert.deepEqual(ch, { scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull' } });
  assert.equal(tokenUrl({ scheme: 'bearer', params: { realm: 'https://a/t?x=1', service: 's' } }, 'repository:r:pull'), 'https://a/t?x=1&service=s&scope=repository%3Ar%3Apull');
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });

  const auths = parseDockerAuths(JSON.stringify({ auths: {
    'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') },
    'Reg.Example.com:5000': { username: 'u', password: 'p:with:colons' },
    broken: { auth: 'bm9jb2xvbg==' },
  } }));
  assert.deepEqual(auths, { 'docker.io': { username: 'hub', password: 'pw' }, 'reg.example.com:5000': { username: 'u', password: 'p:with:colons' } });
  assert.equal(registryErrorCode(Buffer.from('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}')), 'MANIFEST_UNKNOWN');
  assert.equal(registryErrorCode(Buffer.from('<html>')), null);
});
