/**
 * HostDriver: everything the control plane asks of one host, in workspace
 * terms. In-process today (LocalHost); the seam where an RPC goes when
 * Hearth spans several hosts. Unit tests of the API use a fake of this
 * interface (test/unit only); the product ships only LocalHost.
 */
import type { AgentEndpoint } from '../core/agent-protocol.ts';
import type { Capabilities, DiskUsage, DriverName, OverlayListing, SandboxState, SandboxStats, SnapshotSupport } from './drivers/driver.ts';
import type { PullEvent } from './images/oci/pull.ts';
import type { HostSnapshot, SnapshotOptions } from './snapshots/types.ts';
import type { ImageCatalogEntry, ResolvedImage } from './images/types.ts';
import type { BuildEvent } from './images/build/execute.ts';
import type { ImageManifest } from './images/manifest.ts';

/** A Dockerfile build as the control plane asks for it (control/image-builds.ts chose the ref and the owner). */
export interface HostBuildRequest {
  contextDir: string;
  dockerfile: string;
  ref: string;
  buildArgs?: Record<string, string>;
  owner: { namespace: string | null; published: boolean };
  /** Maps (and checks) a FROM / COPY --from name as the caller may use it; throws when it may not. */
  resolveName?: (name: string) => Promise<string>;
}
import type { WorkspaceConfig } from '../core/workspace-spec.ts';

/** What a reconcile sweep removed, and what it could not. */
export interface OrphanSweep {
  sandboxes: string[];
  dirs: string[];
  /** Slot indexes whose bridge port (and netns) were removed. */
  slots: number[];
  failed: { what: string; error: string }[];
}

/** What the host needs to know about a workspace to run it. */
export interface SandboxRef {
  id: string;
  driver: DriverName;
  slotIndex: number;
  generation: number;
  agentSecret: string;
  image: string;
  hostname: string;
  config: WorkspaceConfig;
}

export interface HostDriver {
  /** The driver used when a create does not ask for one ("auto"). */
  readonly defaultDriver: DriverName;
  /** How many network slots the host offers. */
  readonly slotCapacity: number;
  capabilities(): Promise<Capabilities[]>;
  resolveImage(name: string): Promise<ResolvedImage>;
  /** Build an image from a Dockerfile (images/build/); absent on hosts that cannot build. */
  buildImage?(req: HostBuildRequest, onEvent?: (e: BuildEvent) => void): Promise<ImageManifest>;
  /** The namespace that built an image (by name or id) and whether it is published; null when it was not built here. */
  imageBuildOwner?(name: string): Promise<{ namespace: string | null; published: boolean } | null>;
  catalog(): Promise<ImageCatalogEntry[]>;
  /** Start the sandbox and wait until its agent answers /health. Throws ProvisionFailed. */
  start(ws: SandboxRef): Promise<void>;
  stop(ws: SandboxRef): Promise<void>;
  /**
   * Warm pools (optional; without both no pool runs): start a sandbox for a
   * pool — `ws.agentSecret` is the pool's, its config neutral and
   * air-gapped — and wait until its agent answers.
   */
  prestart?(ws: SandboxRef): Promise<void>;
  /**
   * Make a pooled sandbox (started by prestart with `poolSecret`) the
   * workspace `ws`: host name, /etc/hosts, its firewall policy and its own
   * agent secret (the agent forgets the pool's), then wait until the agent
   * answers with the new secret. Throws ProvisionFailed; the caller then
   * stops the sandbox and starts it cold.
   */
  claim?(ws: SandboxRef, poolSecret: string): Promise<void>;
  /**
   * Give the running agent of `ws` (which holds ws.agentSecret) the secret
   * `next`: 'rekeyed' once only `next` is accepted; 'not-running' when the
   * sandbox is not up (its next start uses the stored secret); 'paused' and
   * 'too-old' (an agent that predates the rotation route) when the agent
   * keeps its secret. Throws when a running agent cannot be reached.
   */
  rekeyAgent?(ws: SandboxRef, next: string): Promise<'rekeyed' | 'not-running' | 'paused' | 'too-old'>;
  pause(ws: SandboxRef): Promise<void>;
  resume(ws: SandboxRef): Promise<void>;
  destroy(ws: SandboxRef): Promise<void>;
  state(ws: SandboxRef): Promise<SandboxState>;
  stats(ws: SandboxRef): Promise<SandboxStats | null>;
  /**
   * Grow the workspace's disk to its config.disk_size_mb (optional; never
   * shrinks): at once where the driver can, else at its next start.
   */
  resizeDisk?(ws: SandboxRef): Promise<'grown' | 'next-start' | 'unchanged'>;
  /**
   * Apply config.cpus and config.memory_mb to the running sandbox (optional):
   * 'applied' at once (container cgroups), 'next-start' otherwise (microVM,
   * or not running). Throws StateConflict when the sandbox refuses the limit.
   */
  resizeLive?(ws: SandboxRef): Promise<'applied' | 'next-start'>;
  /** The disk's usage, read from the disk (optional; null: this driver cannot tell). */
  diskUsage?(ws: SandboxRef): Promise<DiskUsage | null>;
  /** Files of the writable layer (optional; null: this driver cannot list them from the host). */
  overlayFiles?(ws: SandboxRef, limit: number, running: boolean): Promise<OverlayListing | null>;
  /** Flush the disk's buffered writes (optional): true when something mounted was flushed. */
  syncDisk?(ws: SandboxRef): Promise<boolean>;
  /** Apply network settings (allow_internet, ingress, egress, outbound_ip) live. */
  applyNetwork(ws: SandboxRef): Promise<void>;
  /** Load the network policies of every workspace the store knows (after reconcile): idempotent, no duplicates, no gaps. */
  syncNetwork(all: SandboxRef[]): Promise<void>;
  /**
   * Publish hearthd to its workspaces (src/core/internal-plane.ts): the
   * address its workspace-facing listener binds (the bridge's gateway), and
   * once it listens, `publish(port)` opens the gateway's port 80 to it and
   * makes Hearth's DNS answer the internal names. Absent or null: this host
   * has no workspace network to publish on.
   */
  internalPlane?(): { address: string; publish(port: number): Promise<void> } | null;
  /** The outbound (SNAT) address in effect for a workspace; null = the host's outgoing interface address. */
  outboundIp(ws: Pick<SandboxRef, 'config'>): string | null;
  /** Throws ValidationFailed unless `ip` is an address of this host usable as an outbound IP. */
  checkOutboundIp(ip: string): Promise<void>;
  agentEndpoint(ws: Pick<SandboxRef, 'slotIndex'>): AgentEndpoint;
  /** Bytes sent by the workspace so far (host side of its link), or null when it has no link. */
  egressBytes(ws: Pick<SandboxRef, 'slotIndex'>): Promise<number | null>;
  /**
   * Workspace ids with a sandbox on this host (for reconcile), with the
   * state when the driver tells it in the same probe (container: `runc list`).
   */
  listSandboxes(): Promise<{ id: string; driver: DriverName; state?: SandboxState }[]>;
  /**
   * Remove what this instance provably owns but the store does not know
   * (reconcile): sandboxes and workspace directories of unknown ids, and
   * bridge ports of slots no workspace holds. Never anything outside this
   * instance's runc root, run dir, data dir and bridge. `listed`: the
   * sandbox ids of a listSandboxes() the caller just made (else it lists).
   */
  removeOrphans(known: { ids: ReadonlySet<string>; slots: ReadonlySet<number> }, listed?: string[]): Promise<OrphanSweep>;

  // Images and snapshots (src/host/images, src/host/snapshots).
  /** Pull (or find locally) an image by any name `resolveImage` accepts, reporting progress. */
  pullImage(name: string, onEvent?: (e: PullEvent) => void): Promise<ResolvedImage>;
  /** What snapshots of a workspace on this driver capture (lifecycle: snapshot_supported). */
  snapshotSupport(driver: DriverName): SnapshotSupport;
  /**
   * Snapshot the workspace's sandbox as `snapshotId` (made by the control
   * plane). A running sandbox is frozen while its state is copied; `after`
   * says how it is left ('stop' leaves it frozen for the caller's stop).
   */
  snapshot(ws: SandboxRef, snapshotId: string, opts: SnapshotOptions): Promise<HostSnapshot>;
  /** Replace a stopped sandbox's state by a snapshot of it. */
  restoreSnapshot(ws: SandboxRef, snapshotId: string): Promise<{ state: SandboxState }>;
  /** Remove a snapshot's files. Idempotent. */
  deleteSnapshot(snapshotId: string): Promise<void>;
  /**
   * Export a snapshot as a versioned archive file (a gzip OCI layer tar of
   * the writable layer, `vm_paths`/`exclude_vm_paths` applied) in the data dir.
   */
  exportSnapshot(snapshotId: string, name: { workspaceId: string; version: string }, filter: { include: string[]; exclude: string[] }): Promise<{ file: string; bytes: number; sha256: string; entries: number }>;
  /** Remove an archive file written by exportSnapshot. Idempotent. */
  deleteArchiveFile(file: string): Promise<void>;
  close(): Promise<void>;
}
