/**
 * A build context sent over the API: a tar stream unpacked by the same
 * unpacker pulled layers go through (no path through a symlink, no `..`,
 * bounded bytes, entries and depth), into a scratch dir the caller removes.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { readTar } from '../oci/tar.ts';
import { unpackLayer } from '../oci/unpack.ts';
import { boundedBytes, imageLimits } from '../oci/limits.ts';
import { contextLimits } from './context.ts';

export async function receiveContext(body: Readable, env: NodeJS.ProcessEnv = process.env): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(env.HEARTH_BUILD_TMP ?? os.tmpdir(), 'hearth-context-'));
  const cleanup = () => fs.rm(dir, { recursive: true, force: true });
  try {
    const ctx = contextLimits(env);
    // Tar headers and padding cost up to 1.5 KiB a file on top of the bytes the context limit counts.
    const limits = { ...imageLimits(env), maxUncompressedBytes: ctx.maxBytes + ctx.maxFiles * 1536, maxEntries: ctx.maxFiles };
    await unpackLayer(readTar(boundedBytes(body, 'maxUncompressedBytes', limits, 'the build context')), dir, { limits, chown: false });
    return { dir, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
