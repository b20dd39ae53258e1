/** Custom domains: per workspace (§10.1) and the account-level helpers (§10.2). */
import type { RouteTable } from '../route-table.ts';
import type { PublicAccessService } from '../../control/public-access.ts';
import { bodyObject, param, queryString, type Json } from '../parse.ts';

export function domainRoutes(r: RouteTable, svc: PublicAccessService): void {
  const base = '/workspace/:id/domain';

  r.add('GET', base, 'workspace:read', async (req, _reply, p) => {
    return { success: true, domain: await svc.getDomain(p, param(req.params, 'id')) };
  });

  r.add('POST', base, 'expose', async (req, _reply, p) => {
    return { success: true, ...(await svc.connectDomain(p, param(req.params, 'id'), bodyObject(req.body))) };
  });

  r.add('DELETE', base, 'expose', async (req, _reply, p) => {
    return { success: true, disconnected: true, ...(await svc.disconnectDomain(p, param(req.params, 'id'))) };
  });

  r.add('POST', `${base}/check`, 'workspace:read', async (req, _reply, p) => {
    // The workspace must be the caller's; its claim of the domain (if any) is checked too.
    return { success: true, enterprise: false, ...(await svc.checkDns(bodyObject(req.body).domain, { principal: p, workspace: param(req.params, 'id') })) };
  });

  r.add('POST', `${base}/ssl/renew`, 'expose', async (req, _reply, p) => {
    return { success: true, ...(await svc.renewDomain(p, param(req.params, 'id'))) };
  });

  r.add('POST', '/domain/check-slug', 'workspace:read', async (req) => {
    return { success: true, ...(await svc.checkSlug(bodyObject(req.body))) };
  });

  r.add('POST', '/domain/verify', 'workspace:read', async (req, _reply, p) => {
    // Proof of ownership is checked now for resource_id's claim, or every claim of the domain the caller can see.
    const body = bodyObject(req.body);
    const resource = typeof body.resource_id === 'string' && body.resource_id !== '' ? body.resource_id : undefined;
    return { success: true, ...(await svc.checkDns(body.domain, { principal: p, ...(resource ? { workspace: resource } : {}) })) };
  });

  r.add('GET', '/domain/routes', 'workspace:read', async (req, _reply, p) => {
    return { success: true, data: await svc.listRoutes(p, queryString(req.query as Json, 'namespace')) };
  });

  r.add('GET', '/domain/ssls', 'workspace:read', async (req, _reply, p) => {
    return { success: true, data: await svc.listCertificates(p, queryString(req.query as Json, 'namespace')) };
  });

  r.add('PUT', '/domain/ssls/:domain/auto-renew', 'expose', async (req, _reply, p) => {
    return { success: true, ...(await svc.setAutoRenew(p, param(req.params, 'domain'), bodyObject(req.body).enabled)) };
  });
}
