/**
 * Bounds on what one image may cost this host, enforced while the bytes
 * stream (never after the fact): a tenant names any registry or archive, so
 * a gzip bomb, a layer of millions of empty files or a path thousands of
 * directories deep must stop at a limit, not at a full disk.
 *
 * Environment (all optional, positive integers):
 *   HEARTH_IMAGE_MAX_COMPRESSED_BYTES    the layer blobs of one pulled image together, as downloaded (checked
 *                                        against the manifest before the first byte), or an archive file as
 *                                        imported; default 8 GiB
 *   HEARTH_IMAGE_MAX_UNCOMPRESSED_BYTES  one layer's tar stream after decompression (or an imported archive's); default 32 GiB
 *   HEARTH_IMAGE_MAX_ENTRIES             tar entries in one layer (or archive); default 1,000,000
 *   HEARTH_IMAGE_MAX_PATH_DEPTH          components of one entry's path; default 128
 */
import { ImageLimitError } from '../errors.ts';

export interface ImageLimits {
  maxCompressedBytes: number;
  maxUncompressedBytes: number;
  maxEntries: number;
  maxPathDepth: number;
}

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({
  maxCompressedBytes: 8 * 1024 ** 3,
  maxUncompressedBytes: 32 * 1024 ** 3,
  maxEntries: 1_000_000,
  maxPathDepth: 128,
});

const ENV: Record<keyof ImageLimits, string> = {
  maxCompressedBytes: 'HEARTH_IMAGE_MAX_COMPRESSED_BYTES',
  maxUncompressedBytes: 'HEARTH_IMAGE_MAX_UNCOMPRESSED_BYTES',
  maxEntries: 'HEARTH_IMAGE_MAX_ENTRIES',
  maxPathDepth: 'HEARTH_IMAGE_MAX_PATH_DEPTH',
};

export class ImageLimitsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageLimitsConfigError';
  }
}

/** The limits from the environment (defaults for what is unset); throws on a value that is not a positive integer. */
export function imageLimits(env: NodeJS.ProcessEnv = process.env): ImageLimits {
  const out = { ...DEFAULT_IMAGE_LIMITS };
  for (const key of Object.keys(ENV) as Array<keyof ImageLimits>) {
    const raw = env[ENV[key]];
    if (raw === undefined || raw.trim() === '') continue;
    const n = Number(raw.trim());
    if (!Number.isSafeInteger(n) || n <= 0) throw new ImageLimitsConfigError(`${ENV[key]} must be a positive integer (got ${JSON.stringify(raw)})`);
    out[key] = n;
  }
  return out;
}

/** The environment variable that sets a limit (for messages and hints). */
export function limitVariable(key: keyof ImageLimits): string {
  return ENV[key];
}

export function limitError(key: keyof ImageLimits, limits: ImageLimits, message: string): ImageLimitError {
  return new ImageLimitError(ENV[key], limits[key], message);
}

/**
 * Pass chunks through, throwing ImageLimitError as soon as more than
 * `limits[key]` bytes have gone by (so a bomb is stopped after at most one
 * chunk past the limit, whatever it would have expanded to).
 */
export async function* boundedBytes(src: AsyncIterable<Buffer>, key: 'maxCompressedBytes' | 'maxUncompressedBytes', limits: ImageLimits, what: string): AsyncGenerator<Buffer> {
  const max = limits[key];
  let n = 0;
  for await (const c of src) {
    n += c.length;
    if (n > max) throw limitError(key, limits, `${what} is larger than ${max} bytes${key === 'maxUncompressedBytes' ? ' uncompressed' : ''}`);
    yield c;
  }
}
