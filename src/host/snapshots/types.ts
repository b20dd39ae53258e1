/**
 * The snapshot types the HostDriver interface speaks. They live apart from
 * HostSnapshots (host.ts), which needs SandboxRef from host-driver.ts, so
 * the interface and its implementation do not import each other.
 */
import type { SandboxState, SnapshotAfter } from '../drivers/driver.ts';
import type { SnapshotMeta } from './store.ts';

export interface HostSnapshot extends SnapshotMeta {
  /** The sandbox's state after the snapshot. */
  state: SandboxState;
}

export interface SnapshotOptions {
  after: SnapshotAfter;
  /** Capture memory where the driver can (default: when it can). */
  memory?: boolean;
}
