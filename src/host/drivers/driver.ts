/**
 * The isolation driver interface: one per kind of sandbox (runc container,
 * QEMU microVM). Like Firecracker's builder, only create/start produce a
 * running sandbox; pure builders (ociConfig, qemuArgv) are separate from the
 * code that spawns processes, and every acquisition pushes its undo.
 */
import type { AgentDrive, ResolvedImage } from '../images/types.ts';
import type { Slot } from '../network/slot.ts';
import type { NetworkPolicy } from '../../core/network-policy.ts';

/** A workspace disk's usage, read from its file system (GET /workspace/:id/overlay/usage). */
export interface DiskUsage {
  /** Configured size (disk_size_mb). */
  size_mb: number;
  /** What the file system offers (after its own metadata). */
  total_bytes: number;
  used_bytes: number;
  free_bytes: number;
  used_mb: number;
  free_mb: number;
  used_percent: number;
  inodes_total: number;
  inodes_used: number;
  /** Where the numbers come from: the mounted file system, the image's superblock, or a qcow2's allocation (microVM: the guest's file system is not read from the host). */
  source: 'statfs' | 'superblock' | 'qcow2' | 'none';
  /** A growth waiting for the next start (the online resize was not possible). */
  pending_size_mb: number | null;
}

/** One entry of the writable layer (GET /workspace/:id/overlay). */
export interface OverlayEntry {
  /** Path inside the workspace ("/etc/hosts"). */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'deleted' | 'other';
  size: number;
  modified: string;
}

export interface OverlayListing {
  files: OverlayEntry[];
  total: number;
  truncated: boolean;
}

export type DriverName = 'container' | 'microvm';

export interface Capabilities {
  driver: DriverName;
  available: boolean;
  /** Why not, or notes on how (e.g. "TCG: KVM boot probe hung"). */
  reason: string;
  details?: Record<string, unknown>;
}

/** Everything a driver needs to run one workspace. Pure data. */
export interface SandboxSpec {
  workspaceId: string;
  /** Bumped on every (re)creation so a late reaper cannot act on a recreated workspace. */
  generation: number;
  hostname: string;
  image: ResolvedImage;
  agent: AgentDrive;
  /** Secret the agent requires on every request. */
  agentSecret: string;
  agentPort: number;
  cpus: number;
  memoryMb: number;
  diskSizeMb: number;
  pidsLimit: number;
  slot: Slot;
  /** Per-workspace state directory (writable layer, logs, bundle). Survives stop. */
  dir: string;
  /**
   * The workspace's network policy (ingress, egress, air-gap, outbound IP).
   * Informational for drivers: LocalHost applies it with
   * HostNetwork.setPolicy for the workspace's whole life, and a port without
   * one is denied everything; a driver only plugs the port (prepare /
   * prepareTap) and unplugs it (detach).
   */
  network?: NetworkPolicy;
  /** config.allow_internet, as stored (also in `network`). */
  allowInternet?: boolean;
  /** config.allow_ptrace: the container's seccomp filter lets ptrace and its kin through (debuggers). */
  allowPtrace?: boolean;
  /** Started for a warm pool: the agent accepts one claim (a new secret) and the identity is applied then (claimIdentity). */
  pooled?: boolean;
}

/** Host-side resource usage of a sandbox. */
export interface SandboxStats {
  cpuUsageNs: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  pids: number;
}

export type SandboxState = 'running' | 'paused' | 'stopped' | 'missing';

export interface Driver {
  readonly name: DriverName;
  probe(): Promise<Capabilities>;
  /**
   * Prepare the writable layer (first time only) and start the sandbox with its
   * network attached and the agent starting. Idempotent for an already
   * prepared workspace dir: `start` after `stop` is `run` again. Resolves once
   * the sandbox process is up (not necessarily the agent: the caller polls it).
   * On failure everything acquired by this call is released again.
   */
  run(spec: SandboxSpec): Promise<void>;
  /** Stop the sandbox (processes, network attachment), keep its writable layer. Idempotent. */
  stop(spec: SandboxSpec): Promise<void>;
  /** Freeze / thaw all processes. */
  pause(spec: SandboxSpec): Promise<void>;
  resume(spec: SandboxSpec): Promise<void>;
  /** stop + remove the writable layer and every trace on the host. Idempotent. */
  destroy(spec: SandboxSpec): Promise<void>;
  /** What the host says about this sandbox right now. */
  state(spec: SandboxSpec): Promise<SandboxState>;
  stats(spec: SandboxSpec): Promise<SandboxStats | null>;
  /** Ids (workspace ids) of sandboxes of this driver that exist on the host, for reconcile. */
  list(): Promise<string[]>;
  /**
   * Every sandbox of this driver with its state, in one probe (optional):
   * reconcile of a hundred workspaces then costs one `runc list`, not a
   * hundred `runc state`. A sandbox missing from the answer is not running.
   */
  listWithState?(): Promise<{ id: string; state: SandboxState }[]>;
  /**
   * Tear down what this driver owns for a workspace the store does not know
   * (reconcile): its processes, mounts, cgroup and run files, and its
   * directory `dir` under the workspaces root. Not the network: the slot is
   * not known; the host sweeps bridge ports no workspace holds. Idempotent.
   */
  removeOrphan?(workspaceId: string, dir: string): Promise<void>;
  /**
   * Grow the workspace's disk to spec.diskSizeMb (optional; never shrinks).
   * Live where the driver can (container: ext4 grown online), else at the
   * next start; the answer says which.
   */
  resizeDisk?(spec: SandboxSpec): Promise<'grown' | 'next-start' | 'unchanged'>;
  /**
   * Apply spec.cpus and spec.memoryMb to a running sandbox in place
   * (optional): 'applied' when the limits changed now (container: cgroups
   * through runc update), 'next-start' when they take effect at the next
   * start (not running, or the driver cannot change them live).
   */
  resizeLive?(spec: SandboxSpec): Promise<'applied' | 'next-start'>;
  /** What the workspace's disk holds, from the disk itself (optional). */
  diskUsage?(spec: SandboxSpec): Promise<DiskUsage>;
  /** The files of the writable layer, up to `limit` (optional). */
  overlayFiles?(spec: SandboxSpec, limit: number, running: boolean): Promise<OverlayListing>;
  /** Flush the disk's buffered writes to its image; false when nothing is mounted (optional). */
  syncDisk?(spec: SandboxSpec): Promise<boolean>;
  /**
   * A pooled sandbox becomes the workspace `spec` describes (optional; no
   * warm pools without it): what the driver holds of its identity (host
   * name, /etc/hosts) is made the workspace's. The agent's secret and the
   * firewall policy are LocalHost's (claim).
   */
  claimIdentity?(spec: SandboxSpec): Promise<void>;

  // Snapshots (optional: a driver without them answers "not supported"). See src/host/snapshots/.
  /** What this driver's snapshots capture on this host (lifecycle's snapshot_supported). */
  snapshotSupport?(): SnapshotSupport;
  /**
   * Capture the sandbox's state into `req.dir` (an empty directory on the
   * data dir's filesystem). A running sandbox is frozen while its state is
   * copied, so the snapshot is one point in time; afterwards it runs again,
   * or stays frozen when `req.after` is 'stop' (the caller then stops it, so
   * nothing runs between the snapshot and the stop).
   */
  snapshot?(spec: SandboxSpec, req: SnapshotRequest): Promise<DriverSnapshot>;
  /**
   * Replace the sandbox's state by the snapshot in `dir` (made by this
   * driver, format as returned then). Called with the sandbox stopped. A
   * driver that restores memory may start it and says so in the result; the
   * container driver replaces the writable layer and leaves it stopped.
   */
  restoreSnapshot?(spec: SandboxSpec, dir: string, snap: Pick<DriverSnapshot, 'format' | 'kinds'>): Promise<{ state: SandboxState }>;
}

export type SnapshotAfter = 'resume' | 'paused' | 'stop';

export interface SnapshotSupport {
  filesystem: boolean;
  /** Process memory (a microVM's RAM and devices), so a restore resumes running programs. */
  memory: boolean;
  /** Why not, or what is captured. */
  reason: string;
}

export interface SnapshotRequest {
  dir: string;
  /** Capture memory as well, where the driver can. */
  memory: boolean;
  after: SnapshotAfter;
}

export interface DriverSnapshot {
  kinds: Array<'filesystem' | 'memory'>;
  /**
   * Layout of the snapshot dir. `overlay-upper`: `upper/` is a copy of the
   * overlay writable layer (whiteouts as 0/0 devices, opaque xattrs), usable
   * as a lower layer of new workspaces. Other drivers name their own
   * (e.g. a qcow2 overlay plus a migration stream).
   */
  format: string;
  bytes: number;
  /** The sandbox's state when the call returns. */
  state: SandboxState;
}
