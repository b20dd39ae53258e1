/**
 * Every control-plane route declares what it needs; the check lives here, in
 * one place, before any handler runs. A route declares
 *   - a permission (who may call it at all, and the grant that goes with it),
 *   - the extra grants every call needs (`grants`: a workload create needs
 *     `runtime` on top of `manage`, because it runs code),
 *   - body rules (a create or update body that sets `remove_on_exit` needs
 *     `destroy`, one that sets `config.cmd` needs `runtime`),
 *   - state rules (a stop of a workspace that is removed on exit needs
 *     `destroy`), decided from the target workspace as it is stored.
 * The declared table is also what the contract guard test compares with the
 * routes of docs/contract.md, and what the route × grant matrix test walks.
 * Replies to callers without the runtime grant go through `redactSecrets`.
 */
import { DEFAULT_RECHECK_MS, setRecheck } from './recheck.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.ts';
import { Forbidden, NotFound } from '../core/errors.ts';
import { ALL_GRANTS, requireGrant, type GrantName } from '../core/grants.ts';
import { redactSecrets } from './views.ts';
import { toHttpError } from './errors.ts';

export type { GrantName } from '../core/grants.ts';

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

/** The grant a permission carries (null: none, or a check on the kind of credential instead). */
export const PERMISSION_GRANT: Record<Permission, GrantName | null> = {
  'public': null, 'workspace:read': null, 'namespace:read': null,
  'workspace:write': 'manage', 'workspace:create': 'create', 'workspace:delete': 'destroy',
  'runtime': 'runtime', 'expose': 'expose', 'namespace:admin': null, 'admin': null,
};

/**
 * A grant a request needs because of what its JSON body asks for. Declarative,
 * so tests can build a body that triggers each rule.
 */
export interface BodyRule {
  grant: GrantName;
  /** Dotted path in the body: `config.remove_on_exit`. */
  field: string;
  /** The rule applies when the field holds one of these values; 'any': whenever it is present. */
  values: readonly unknown[] | 'any';
  why: string;
}

/** What state rules see of the target workspace (`:id`), as stored. */
export interface TargetWorkspace {
  mode: string;
  config: Record<string, unknown>;
}

/** A grant a request needs because of the target workspace's current state. */
export interface StateRule {
  grant: GrantName;
  applies: (ws: TargetWorkspace, body: Record<string, unknown>) => boolean;
  why: string;
  /** A stored config and a body for which the rule applies (for tests and the docs). */
  example: { config: Record<string, unknown>; body: Record<string, unknown> };
}

export interface RouteNeeds {
  /** Grants every call needs, beyond the permission's own. */
  grants?: readonly GrantName[];
  body?: readonly BodyRule[];
  state?: readonly StateRule[];
}

export interface RouteDecl {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  permission: Permission;
  /** Grants every call needs: the permission's and the declared ones. */
  grants: GrantName[];
  body: readonly BodyRule[];
  state: readonly StateRule[];
}

export type Handler = (req: FastifyRequest, reply: FastifyReply, principal: Principal) => Promise<unknown>;

/** Who may call a route of this permission at all, then the permission's own grant. */
export function authorize(p: Principal, permission: Permission): void {
  if (permission === 'workspace:create' && p.workspaceId !== null) throw new Forbidden('a workspace-scoped token cannot create workspaces');
  if (permission === 'namespace:admin' && (p.kind !== 'key' || p.namespace !== null)) throw new Forbidden('namespaces are managed with an account-level API key');
  if (permission === 'admin' && !p.admin) throw new Forbidden('this operation needs an admin API key');
  const grant = PERMISSION_GRANT[permission];
  if (grant) requireGrant(p.grants, grant);
}

/** The value at a dotted path of a JSON body (undefined when any step is missing or not an object). */
export function fieldOf(body: unknown, path: string): unknown {
  let v: unknown = body;
  for (const step of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[step];
  }
  return v;
}

/** Grants the body asks for under these rules. */
export function bodyGrants(rules: readonly BodyRule[], body: unknown): GrantName[] {
  const out: GrantName[] = [];
  for (const r of rules) {
    const v = fieldOf(body, r.field);
    if (v === undefined) continue;
    if (r.values === 'any' || r.values.includes(v)) out.push(r.grant);
  }
  return out;
}

function asObject(body: unknown): Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? body as Record<string, unknown> : {};
}

/** Looks up the target workspace of a state rule: the caller's view, so a workspace it cannot see is "not found". */
export type TargetLookup = (p: Principal, id: string) => Promise<TargetWorkspace>;

/** One finished state-changing call, for the activity log (who, what, when, result). */
export interface AuditEvent {
  decl: RouteDecl;
  principal: Principal;
  req: FastifyRequest;
  status: number;
  errorCode: string | null;
}

/** Registers routes and remembers their declarations. */
export class RouteTable {
  readonly routes: RouteDecl[] = [];
  /** Told of every authenticated non-GET call once it is answered (or refused); must not throw. */
  audit: ((e: AuditEvent) => void) | null = null;
  constructor(
    private readonly app: FastifyInstance,
    private readonly authenticate: (req: FastifyRequest) => Promise<Principal>,
    private readonly target?: TargetLookup,
    /** How often long-lived replies (SSE) are re-authorized. */
    private readonly recheckMs = DEFAULT_RECHECK_MS,
  ) {}

  add(method: RouteDecl['method'], url: string, permission: Permission, handler: Handler): void;
  add(method: RouteDecl['method'], url: string, permission: Permission, needs: RouteNeeds, handler: Handler): void;
  add(method: RouteDecl['method'], url: string, permission: Permission, a: RouteNeeds | Handler, b?: Handler): void {
    const needs: RouteNeeds = typeof a === 'function' ? {} : a;
    const handler = (typeof a === 'function' ? a : b)!;
    const own = PERMISSION_GRANT[permission];
    const grants = [...new Set([...(own ? [own] : []), ...(needs.grants ?? [])])];
    const decl: RouteDecl = { method, url, permission, grants, body: needs.body ?? [], state: needs.state ?? [] };
    if (decl.state.length && !url.includes('/:id')) throw new Error(`${method} ${url}: state rules need a workspace :id in the url`);
    this.routes.push(decl);
    this.app.route({
      method, url,
      handler: async (req, reply) => {
        const principal = permission === 'public' ? publicPrincipal : await this.authenticate(req);
        const audited = this.audit !== null && method !== 'GET' && permission !== 'public';
        try {
          await this.check(decl, principal, req);
          if (permission !== 'public') setRecheck(req, { everyMs: this.recheckMs, check: () => this.recheck(decl, req) });
          const out = await handler(req, reply, principal);
          if (audited) this.audit!({ decl, principal, req, status: reply.statusCode, errorCode: null });
          // Hijacked replies (SSE) return the reply itself; everything else is JSON for the wire.
          if (out === reply || principal.grants.runtime) return out;
          return redactSecrets(out);
        } catch (err) {
          if (audited) { const e = toHttpError(err); this.audit!({ decl, principal, req, status: e.status, errorCode: e.code }); }
          throw err;
        }
      },
    });
  }

  /**
   * The admission of `req` again, as of now: the credential still
   * authenticates, still has the permission and grants, and still sees the
   * workspace the route names.
   */
  private async recheck(decl: RouteDecl, req: FastifyRequest): Promise<void> {
    const p = await this.authenticate(req);
    await this.check(decl, p, req);
    const id = (req.params as Record<string, unknown>).id;
    if (this.target && typeof id === 'string' && decl.url.startsWith('/workspace/:id')) await this.target(p, decodeURIComponent(id));
  }

  /** Permission, declared grants, body rules, then state rules: the first missing grant refuses the call. */
  private async check(decl: RouteDecl, p: Principal, req: FastifyRequest): Promise<void> {
    authorize(p, decl.permission);
    for (const g of decl.grants) requireGrant(p.grants, g);
    for (const g of bodyGrants(decl.body, req.body)) requireGrant(p.grants, g);
    const pending = decl.state.filter((r) => !p.grants[r.grant]);
    if (pending.length === 0) return;
    const id = (req.params as Record<string, unknown>).id;
    if (typeof id !== 'string' || !this.target) return;
    // A workspace the caller cannot see is the handler's 404, not a refusal here.
    const ws = await this.target(p, decodeURIComponent(id)).catch((e: unknown) => { if (e instanceof NotFound) return null; throw e; });
    if (!ws) return;
    const body = asObject(req.body);
    for (const r of pending) if (r.applies(ws, body)) requireGrant(p.grants, r.grant);
  }
}

const publicPrincipal: Principal = { kind: 'key', clientId: 'anonymous', admin: false, namespace: null, workspaceId: 'none', grants: { ...ALL_GRANTS, create: false, destroy: false, runtime: false, expose: false, manage: false, reach: [], egressHosts: [] } };
