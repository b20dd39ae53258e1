/** The stored workspace and its decoding live in workspaces/row.ts; this path stays for the planes and views that import it. */
export { decodeWorkspace, sandboxRef, type Provisioning, type Workspace } from './workspaces/row.ts';
