/**
 * Every control-plane route declares the permission it needs; the check
 * lives here, in one place. The declared table is also what the contract
 * guard test compares with the routes of docs/contract.md.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.ts';
import { Forbidden } from '../core/errors.ts';
import { ALL_GRANTS, requireGrant } from '../core/grants.ts';

export type Permission =
  | 'public'            // no credentials (health)
  | 'workspace:read'    // see workspaces the caller's scope covers, read their usage
  | 'workspace:write'   // change them: power, config, lifecycle, network (grant: manage)
  | 'workspace:create'  // create new ones (grant: create; never workspace-scoped)
  | 'workspace:delete'  // delete them (grant: destroy)
  | 'runtime'           // obtain data-plane tokens for them (grant: runtime)
  | 'expose'            // publish ports: preview URLs, custom domains (grant: expose)
  | 'namespace:read'    // see namespaces in scope
  | 'namespace:admin'   // create/change/delete namespaces, quotas (account-level API keys)
  | 'admin';            // admin API keys only (mint tokens, manage keys)

export interface RouteDecl {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  permission: Permission;
}

export type Handler = (req: FastifyRequest, reply: FastifyReply, principal: Principal) => Promise<unknown>;

export function authorize(p: Principal, permission: Permission): void {
  switch (permission) {
    case 'public':
    case 'workspace:read':
    case 'namespace:read':
      return;
    case 'workspace:write':
      return requireGrant(p.grants, 'manage');
    case 'workspace:create':
      if (p.workspaceId !== null) throw new Forbidden('a workspace-scoped token cannot create workspaces');
      return requireGrant(p.grants, 'create');
    case 'workspace:delete':
      return requireGrant(p.grants, 'destroy');
    case 'runtime':
      return requireGrant(p.grants, 'runtime');
    case 'expose':
      return requireGrant(p.grants, 'expose');
    case 'namespace:admin':
      if (p.kind !== 'key' || p.namespace !== null) throw new Forbidden('namespaces are managed with an account-level API key');
      return;
    case 'admin':
      if (!p.admin) throw new Forbidden('this operation needs an admin API key');
      return;
  }
}

/** Registers routes and remembers their declarations. */
export class RouteTable {
  readonly routes: RouteDecl[] = [];
  constructor(
    private readonly app: FastifyInstance,
    private readonly authenticate: (req: FastifyRequest) => Promise<Principal>,
  ) {}

  add(method: RouteDecl['method'], url: string, permission: Permission, handler: Handler): void {
    this.routes.push({ method, url, permission });
    this.app.route({
      method, url,
      handler: async (req, reply) => {
        const principal = permission === 'public' ? publicPrincipal : await this.authenticate(req);
        authorize(principal, permission);
        return handler(req, reply, principal);
      },
    });
  }
}

const publicPrincipal: Principal = { kind: 'key', clientId: 'anonymous', admin: false, namespace: null, workspaceId: 'none', grants: { ...ALL_GRANTS, create: false, destroy: false, runtime: false, expose: false, manage: false, reach: [], egressHosts: [] } };
