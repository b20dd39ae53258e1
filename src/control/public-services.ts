/**
 * The services behind public access and SSH, as one value hearthd builds and
 * hands to the API, the edge and the SSH gateway (so all three share the same
 * route table and listeners). `defaultPublicServices` serves in-process API
 * tests and any caller that runs the API without the edge.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.ts';
import type { WorkspaceService } from './workspaces/index.ts';
import { MAX_PUBLIC_PORTS, PublicAccessService, type PublicAccessOptions } from './public-access.ts';
import { SshService, type SshServiceOptions } from './ssh.ts';

export const DEFAULT_PREVIEW_DOMAIN = 'preview.localhost';

export interface PublicServices {
  publicAccess: PublicAccessService;
  ssh: SshService;
}

export function createPublicServices(deps: { db: Db; workspaces: WorkspaceService; log: Logger }, opts: Partial<PublicAccessOptions> & Partial<SshServiceOptions> = {}): PublicServices {
  const publicAccess = new PublicAccessService(deps.db, deps.workspaces, deps.log.child({ component: 'public-access' }), {
    previewDomain: opts.previewDomain ?? DEFAULT_PREVIEW_DOMAIN,
    maxPorts: opts.maxPorts ?? MAX_PUBLIC_PORTS,
    edgePorts: opts.edgePorts ?? (() => ({ http: null, https: null })),
    ...(opts.edgeIps ? { edgeIps: opts.edgeIps } : {}),
    ...(opts.resolveDns ? { resolveDns: opts.resolveDns } : {}),
  });
  const ssh = new SshService(deps.db, deps.workspaces, deps.log.child({ component: 'ssh-access' }), { endpoint: opts.endpoint ?? (() => null) });
  return { publicAccess, ssh };
}

export function defaultPublicServices(deps: { db: Db; workspaces: WorkspaceService; log: Logger }): PublicServices {
  return createPublicServices(deps);
}
