/**
 * HostDriver: everything the control plane asks of one host, in workspace
 * terms. In-process today (LocalHost); the seam where an RPC goes when
 * Hearth spans several hosts. Unit tests of the API use a fake of this
 * interface (test/unit only); the product ships only LocalHost.
 */
import type { Capabilities, DriverName, SandboxState, SandboxStats } from './drivers/driver.ts';
import type { ImageCatalogEntry, ResolvedImage } from './images/types.ts';
import type { WorkspaceConfig } from '../core/workspace-spec.ts';

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

export interface AgentEndpoint {
  ip: string;
  port: number;
}

export interface HostDriver {
  /** The driver used when a create does not ask for one ("auto"). */
  readonly defaultDriver: DriverName;
  /** How many network slots the host offers. */
  readonly slotCapacity: number;
  capabilities(): Promise<Capabilities[]>;
  resolveImage(name: string): Promise<ResolvedImage>;
  catalog(): Promise<ImageCatalogEntry[]>;
  /** Start the sandbox and wait until its agent answers /health. Throws ProvisionFailed. */
  start(ws: SandboxRef): Promise<void>;
  stop(ws: SandboxRef): Promise<void>;
  pause(ws: SandboxRef): Promise<void>;
  resume(ws: SandboxRef): Promise<void>;
  destroy(ws: SandboxRef): Promise<void>;
  state(ws: SandboxRef): Promise<SandboxState>;
  stats(ws: SandboxRef): Promise<SandboxStats | null>;
  /** Apply network settings (allow_internet, ingress, egress) live. */
  applyNetwork(ws: SandboxRef): Promise<void>;
  agentEndpoint(ws: Pick<SandboxRef, 'slotIndex'>): AgentEndpoint;
  /** Workspace ids with a sandbox on this host (for reconcile). */
  listSandboxes(): Promise<{ id: string; driver: DriverName }[]>;
  close(): Promise<void>;
}
