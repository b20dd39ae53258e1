/**
 * On-disk records of built artifacts and the pure readers of what is inside
 * a built tree (dpkg status, Debian versions).
 */

/** `images/<id>.json`: one built image. Layer paths are relative to the artifacts root. */
export interface ImageManifest {
  schema: 1;
  id: string;
  ref: string;
  /** Layer rootfs dirs, TOP FIRST, relative to the artifacts root (`layers/debian-12-…/rootfs`). */
  layers: string[];
  /** Layer keys (sha256 of each layer's inputs), same order as `layers`. */
  layer_digests: string[];
  env: string[];
  workingDir: string;
  user: string;
  /** sha256 over the layer digests and the config. */
  digest: string;
  /** What is really inside, read from the built tree. */
  versions: Record<string, string>;
  built_at: string;
  recipe_version: number;
  /** Present for pulled or imported images (`digest` is then the config digest, Docker's image id). */
  kind?: 'oci';
  /** Image config beyond env/workingDir/user: the default command. */
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  /** Registry manifest digest (null for `docker save` archives, which carry none). */
  manifest_digest?: string | null;
  source?: { type: 'registry' | 'docker-archive' | 'oci-archive' | 'build'; from: string };
  /** Images built from a Dockerfile: the namespace that built them, and whether the operator published them to all. */
  build?: { namespace: string | null; published: boolean; ref: string };
  /** Bytes of the unpacked layers. */
  size?: number;
  labels?: Record<string, string>;
  exposed_ports?: string[];
  created?: string | null;
}

/** `layers/<name>-<key>/layer.json`: one built layer. */
export interface LayerMeta {
  schema: 1;
  name: string;
  key: string;
  inputs: Record<string, unknown>;
  versions: Record<string, string>;
  built_at: string;
  seconds: number;
}

export class ManifestError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'ManifestError';
  }
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** Parse and check an image manifest; throws ManifestError naming the bad field. */
export function parseImageManifest(text: string, file = 'manifest'): ImageManifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(file, `not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null) throw new ManifestError(file, 'not an object');
  const m = v as Record<string, unknown>;
  const need = (key: string, ok: boolean) => {
    if (!ok) throw new ManifestError(file, `missing or invalid ${key}`);
  };
  need('schema', m.schema === 1);
  for (const key of ['id', 'ref', 'workingDir', 'user', 'digest', 'built_at']) need(key, typeof m[key] === 'string' && m[key] !== '');
  need('layers', isStringArray(m.layers) && m.layers.length > 0);
  need('layer_digests', isStringArray(m.layer_digests) && m.layer_digests.length === (m.layers as string[]).length);
  need('env', isStringArray(m.env));
  need('versions', isStringRecord(m.versions));
  need('recipe_version', typeof m.recipe_version === 'number');
  need('digest', /^sha256:[0-9a-f]{64}$/.test(m.digest as string));
  if (m.kind !== undefined) {
    need('kind', m.kind === 'oci');
    for (const key of ['entrypoint', 'cmd']) need(key, m[key] === null || m[key] === undefined || isStringArray(m[key]));
  }
  return m as unknown as ImageManifest;
}

/** Package → version of the installed packages in a dpkg status file. */
export function parseDpkgStatus(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const stanza of text.split(/\n\s*\n/)) {
    const pkg = /^Package:\s*(\S+)/m.exec(stanza)?.[1];
    const version = /^Version:\s*(\S+)/m.exec(stanza)?.[1];
    const status = /^Status:\s*(.+)$/m.exec(stanza)?.[1]?.trim();
    if (pkg && version && status?.endsWith(' installed')) out.set(pkg, version);
  }
  return out;
}

/** Upstream part of a Debian version: `1:3.11.2-1+b1` → `3.11.2`, `23.0.1+dfsg-1` → `23.0.1`. */
export function upstreamVersion(debianVersion: string): string {
  let v = debianVersion.replace(/^\d+:/, '');
  const dash = v.lastIndexOf('-');
  if (dash > 0) v = v.slice(0, dash);
  return v.replace(/[+~](dfsg|ds|repack)[^+~]*$/i, '');
}

/** The Python version of a dpkg database: the newest installed `python3.X` interpreter package. */
export function pythonVersion(packages: Map<string, string>): string | undefined {
  let best: { minor: number; version: string } | undefined;
  for (const [pkg, version] of packages) {
    const m = /^python3\.(\d+)$/.exec(pkg);
    if (!m) continue;
    const minor = Number(m[1]);
    if (!best || minor > best.minor) best = { minor, version: upstreamVersion(version) };
  }
  return best?.version;
}

/** Check built versions against a recipe's promises (`{ python: '3.11.' }`). Returns problems. */
export function checkExpectedVersions(versions: Record<string, string>, expect: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const [name, prefix] of Object.entries(expect)) {
    const found = versions[name];
    if (found === undefined) problems.push(`${name}: not found in the built tree (expected ${prefix}*)`);
    else if (!`${found}.`.startsWith(prefix)) problems.push(`${name}: found ${found}, the image name promises ${prefix}*`);
  }
  return problems;
}
