/** What control-plane routes may use: services, never the store or the kernel directly. */
import type { Logger } from 'pino';
import type { WorkspaceService } from '../control/workspaces/index.ts';
import type { NamespaceService } from '../control/namespaces.ts';
import type { UsageReports } from '../control/usage.ts';
import type { SnapshotService } from '../control/snapshots.ts';
import type { AgentClient } from '../control/agent-client.ts';
import type { PublicServices } from '../control/public-services.ts';
import type { TokenSigner } from '../auth/jwt.ts';
import type { ApiKeys } from '../auth/keys.ts';
import type { ActivityLog } from '../control/activity.ts';

export interface ApiContext {
  workspaces: WorkspaceService;
  namespaces: NamespaceService;
  usage: UsageReports;
  snapshots: SnapshotService;
  /** Brings usage up to now before a report is read. */
  meter: { tick(): Promise<void> } | null;
  /** hearthd's client of the workspaces' guest agents (workload, log and metrics routes). */
  agent: AgentClient;
  /** Public access and SSH: the same instances the edge and the SSH gateway serve. */
  publicServices: PublicServices;
  signer: TokenSigner;
  /** Authentication, API keys and token revocation. */
  keys: ApiKeys;
  log: Logger;
  /** Shortest idle-sleep delay accepted (contract: 120 s; tests lower it). */
  minIdleSeconds?: number;
  /** How often open SSE streams are re-authorized (default 30 s; tests shorten it). */
  streamRecheckMs?: number;
  /** Public URL of the data-plane gateway (returned with raw/runtime tokens). */
  runtimeUrl: () => string | null;
  /** Every state-changing call (usage.activity); absent: nothing is recorded. */
  activity?: ActivityLog;
  /** The image of a create that names none (`hearth serve --default-image`; default debian-12). */
  defaultImage?: string;
}
