/**
 * Content keys for built artifacts: every artifact is named by a
 * hash of its inputs, so an unchanged input set is a cache hit (logged CACHED).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export type KeyValue = string | number | boolean | null | KeyValue[] | { [key: string]: KeyValue };

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(value: KeyValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] as KeyValue)}`).join(',')}}`;
}

/** `sha256:<hex>` over the canonical JSON of the inputs. */
export function hashKey(inputs: { [key: string]: KeyValue }): string {
  return `sha256:${createHash('sha256').update(canonicalJson(inputs)).digest('hex')}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Stream a file through a hash; `algorithm` is any node:crypto digest name. */
export function hashFile(file: string, algorithm = 'sha256', encoding: 'hex' | 'base64' = 'hex'): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash(algorithm);
    createReadStream(file)
      .on('data', (chunk) => h.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(h.digest(encoding)));
  });
}

/**
 * Check a file against an npm/SRI integrity string (`sha512-<base64>`, several
 * space-separated entries allowed: one matching entry is enough).
 */
export async function verifyIntegrity(file: string, integrity: string): Promise<boolean> {
  for (const entry of integrity.trim().split(/\s+/)) {
    const m = /^(sha512|sha384|sha256|sha1)-([A-Za-z0-9+/=]+)/.exec(entry);
    if (!m) continue;
    const [, algorithm, expected] = m as unknown as [string, string, string];
    if ((await hashFile(file, algorithm, 'base64')) === expected) return true;
  }
  return false;
}
