/** SSH access (§8): status, enable/disable, password and key. The gateway itself lives in src/ssh/. */
import type { RouteTable } from '../route-table.ts';
import type { SshService } from '../../control/ssh.ts';
import { bodyObject, param } from '../parse.ts';
import { RUNS_CODE } from '../grant-rules.ts';

export function sshRoutes(r: RouteTable, svc: SshService): void {
  const base = '/workspace/:id/ssh';

  r.add('GET', base, 'workspace:read', async (req, _reply, p) => ({ success: true, ...(await svc.status(p, param(req.params, 'id'))) }));
  r.add('POST', `${base}/enable`, 'workspace:write', RUNS_CODE, async (req, _reply, p) => ({ success: true, ...(await svc.enable(p, param(req.params, 'id'))) }));
  r.add('POST', `${base}/disable`, 'workspace:write', async (req, _reply, p) => ({ success: true, ...(await svc.disable(p, param(req.params, 'id'))) }));
  r.add('POST', `${base}/password`, 'workspace:write', RUNS_CODE, async (req, _reply, p) => ({ success: true, ...(await svc.setPassword(p, param(req.params, 'id'), bodyObject(req.body))) }));
  r.add('POST', `${base}/key`, 'workspace:write', RUNS_CODE, async (req, _reply, p) => ({ success: true, ...(await svc.setKey(p, param(req.params, 'id'), bodyObject(req.body))) }));
}
