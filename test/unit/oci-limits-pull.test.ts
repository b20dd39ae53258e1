/**
 * The bounds of oci/limits.ts on real pulls from an in-process registry on
 * loopback (listed, as an operator lists a private registry): an image
 * whose layers add up to more than HEARTH_IMAGE_MAX_COMPRESSED_BYTES
 * downloads nothing; a layer that inflates past the uncompressed limit, or
 * has too many entries, is refused and leaves no layer behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { startFakeRegistry } from '../helpers/registry.ts';
import { buildImage, type TarSpec } from '../helpers/oci-images.ts';
import { resolveImage } from '../../src/host/images/resolve.ts';
import { registryConfig } from '../../src/host/images/oci/auth.ts';
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from '../../src/host/images/oci/limits.ts';
import { ImageLimitError } from '../../src/host/images/errors.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function pullWith(layers: TarSpec[][], limits: Partial<ImageLimits>): Promise<{ err: unknown; blobRequests: number; layersLeft: string[] }> {
  const img = buildImage({ layers });
  const fake = await startFakeRegistry({ manifests: { 'demo/big': { v1: { bytes: img.manifest, mediaType: OCI_MANIFEST } } }, blobs: img.blobs });
  const artifacts = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-limits-'));
  try {
    const registry = { ...registryConfig({ HEARTH_PRIVATE_REGISTRIES: fake.host }), timeoutMs: 5000, limits: { ...DEFAULT_IMAGE_LIMITS, ...limits } };
    const err = await resolveImage(`${fake.host}/demo/big:v1`, { artifactsDir: artifacts, registry }).then(() => null, (e: unknown) => e);
    const layerBlobs = new Set(img.layerDigests);
    const blobRequests = fake.requests.filter((r) => [...layerBlobs].some((d) => r.includes(d))).length;
    const layersLeft = await fs.readdir(path.join(artifacts, 'layers')).catch(() => [] as string[]);
    return { err, blobRequests, layersLeft };
  } finally {
    await fake.stop();
    await fs.rm(artifacts, { recursive: true, force: true });
  }
}

test('an image whose compressed layers add up to more than the limit downloads nothing', async () => {
  const layer = (n: number): TarSpec[] => [{ type: 'file', path: `f${n}`, content: randomBytes(4096) }];
  const r = await pullWith([layer(1), layer(2), layer(3)], { maxCompressedBytes: 5000 });
  assert.ok(r.err instanceof ImageLimitError, String(r.err));
  assert.match((r.err as ImageLimitError).hint ?? '', /HEARTH_IMAGE_MAX_COMPRESSED_BYTES/);
  assert.equal(r.blobRequests, 0, 'refused from the manifest, before any layer was fetched');
  assert.deepEqual(r.layersLeft, []);
});

test('a layer that inflates past the uncompressed limit, or has too many entries, is refused and not kept', async () => {
  const bomb = await pullWith([[{ type: 'file', path: 'zeros', content: Buffer.alloc(8 * 1024 * 1024) }]], { maxUncompressedBytes: 1024 * 1024 });
  assert.ok(bomb.err instanceof ImageLimitError && /uncompressed/.test(bomb.err.message), String(bomb.err));
  assert.deepEqual(bomb.layersLeft, []);
  const many = await pullWith([Array.from({ length: 50 }, (_, i): TarSpec => ({ type: 'file', path: `f${i}` }))], { maxEntries: 20 });
  assert.ok(many.err instanceof ImageLimitError && /more than 20 entries/.test(many.err.message), String(many.err));
  assert.deepEqual(many.layersLeft, []);
});
