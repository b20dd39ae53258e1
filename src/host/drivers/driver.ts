/**
 * The isolation driver interface: one per kind of sandbox (runc container,
 * QEMU microVM). Like Firecracker's builder, only create/start produce a
 * running sandbox; pure builders (ociConfig, qemuArgv) are separate from the
 * code that spawns processes, and every acquisition pushes its undo.
 */
import type { AgentDrive, ResolvedImage } from '../images/types.ts';
import type { Slot } from '../network/slot.ts';

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
}
