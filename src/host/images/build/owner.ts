/**
 * Who may use a built image: its record says which namespace built it and
 * whether the operator published it. Read by name (a `hearth.local/…` ref)
 * or by id (`oci-<16 hex>`, `sha256:…`). Anything not built here: null.
 */
import type { ArtifactPaths } from '../paths.ts';
import { readImageRecord, readRef } from '../oci/records.ts';
import { formatReference, parseReference } from '../oci/reference.ts';

/** The registry host of built images' refs: never contacted (resolution finds them locally or not at all). */
export const BUILD_REGISTRY = 'hearth.local';

export async function buildOwner(paths: ArtifactPaths, name: string): Promise<{ namespace: string | null; published: boolean } | null> {
  const n = name.trim().toLowerCase();
  let id: string | undefined;
  if (/^oci-[0-9a-f]{16}$/.test(n)) id = n;
  else if (/^sha256:[0-9a-f]{64}$/.test(n)) id = `oci-${n.slice(7, 23)}`;
  else {
    try {
      const ref = parseReference(n);
      id = (await readRef(paths, formatReference(ref)))?.image;
    } catch {
      return null;
    }
  }
  if (!id) return null;
  const m = await readImageRecord(paths, id).catch(() => undefined);
  return m?.build ? { namespace: m.build.namespace, published: m.build.published } : null;
}
