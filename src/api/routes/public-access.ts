/** Public access (§9): expose ports as preview URLs or on custom hostnames. Parse → authorize → one service call → shape. */
import type { RouteTable } from '../route-table.ts';
import type { PublicAccessService } from '../../control/public-access.ts';
import { bodyObject, param } from '../parse.ts';

export function publicAccessRoutes(r: RouteTable, svc: PublicAccessService): void {
  const base = '/workspace/:id/public-access';

  r.add('GET', base, 'workspace:read', async (req, _reply, p) => {
    const ports = await svc.list(p, param(req.params, 'id'));
    return { success: true, ports, count: ports.length, max_ports: svc.opts.maxPorts };
  });

  r.add('POST', base, 'expose', async (req, _reply, p) => {
    return { success: true, port: await svc.expose(p, param(req.params, 'id'), bodyObject(req.body)) };
  });

  r.add('PATCH', `${base}/:port`, 'expose', async (req, _reply, p) => {
    return { success: true, port: await svc.updateSlug(p, param(req.params, 'id'), param(req.params, 'port'), bodyObject(req.body)) };
  });

  r.add('DELETE', `${base}/:port`, 'expose', async (req, _reply, p) => {
    return { success: true, ...(await svc.revoke(p, param(req.params, 'id'), param(req.params, 'port'))) };
  });
}
