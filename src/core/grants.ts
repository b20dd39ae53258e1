/**
 * What a caller may do: the permission model of API keys and scoped tokens.
 * Pure data and pure checks; `src/api/route-table.ts` is the one place that
 * applies them to routes, and the workspace service applies the
 * network-reach rules to ingress/egress changes.
 *
 * Scoped tokens carry explicit grants (Hearth's extension of POST /tokens,
 * §24 [REC]); a missing grant field fails closed for tokens. API keys hold
 * every grant within their scope (account or namespace).
 */
import { Forbidden, ValidationFailed } from './errors.ts';

export interface Grants {
  /** May create workspaces (in its scope). */
  create: boolean;
  /** May delete workspaces (in its scope), or set them to be deleted (remove_on_exit, ttl_action remove). */
  destroy: boolean;
  /**
   * May run code in workspaces or read their secrets: data-plane (runtime)
   * tokens (exec, files, terminals), workloads, SSH credentials, env, logs.
   * Without it, replies carry env values redacted (src/api/views.ts).
   */
  runtime: boolean;
  /** May expose ports publicly (preview URLs, custom domains). */
  expose: boolean;
  /** May change workspaces: power, config, lifecycle. */
  manage: boolean;
  /**
   * Workspaces (ids) its workspaces may be wired to on the internal network
   * (ingress sources / egress targets). null = any in its scope.
   */
  reach: string[] | null;
  /** External hosts/CIDRs its workspaces may be allowed to call (egress). null = any. */
  egressHosts: string[] | null;
}

export const ALL_GRANTS: Grants = { create: true, destroy: true, runtime: true, expose: true, manage: true, reach: null, egressHosts: null };

/** Grants of a scoped token from its (validated) request body; absent booleans default per scope. */
export function parseTokenGrants(body: unknown, scope: 'namespace' | 'workspace'): Grants {
  const b = (body ?? {}) as Record<string, unknown>;
  const bool = (k: string, dflt: boolean) => {
    const v = b[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new ValidationFailed(`permissions.${k}`, `permissions.${k} must be true or false`);
    return v;
  };
  const list = (k: string): string[] | null => {
    const v = b[k];
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ValidationFailed(`permissions.${k}`, `permissions.${k} must be a list of strings`);
    return v as string[];
  };
  // A workspace token manages its one workspace but creates and destroys nothing by default.
  const ns = scope === 'namespace';
  return {
    create: bool('create', ns), destroy: bool('destroy', ns), runtime: bool('runtime', true),
    expose: bool('expose', ns), manage: bool('manage', true), reach: list('reach'), egressHosts: list('egress_hosts'),
  };
}

/** The boolean grants: what a route may require (src/api/route-table.ts declares which). */
export type GrantName = 'create' | 'destroy' | 'runtime' | 'expose' | 'manage';
export const GRANT_NAMES: readonly GrantName[] = ['create', 'destroy', 'runtime', 'expose', 'manage'];

export function requireGrant(g: Grants, what: GrantName): void {
  if (!g[what]) {
    const words: Record<GrantName, string> = {
      create: 'create workspaces',
      destroy: 'delete workspaces or make them end in deletion (remove_on_exit, ttl_action "remove")',
      runtime: 'run code in workspaces or read their secrets (exec, files, workloads, SSH credentials, env, logs)',
      expose: 'expose ports publicly', manage: 'change workspaces',
    };
    throw new Forbidden(`this token may not ${words[what]}: ask for a token with permissions.${what}`);
  }
}

/**
 * Network wiring a caller may set. `ipsOfReachable` are the internal IPs of
 * the workspaces the caller may reach (`unrestricted`: account-level callers
 * without a reach list); entries that are internal IPs of other workspaces are
 * refused, and external destinations must be in egressHosts.
 */
export function checkNetworkReach(
  g: Grants,
  change: { ingress?: string[]; egress?: string[] },
  ctx: { isInternal: (entry: string) => boolean; ipsOfReachable: Set<string>; unrestricted: boolean },
): void {
  for (const [field, entries] of [['ingress', change.ingress], ['egress', change.egress]] as const) {
    for (const e of entries ?? []) {
      if (ctx.isInternal(e)) {
        if (!ctx.ipsOfReachable.has(e) && !ctx.unrestricted) {
          throw new Forbidden(`this token may not wire ${field} to ${e}: it is not one of the workspaces it may reach`);
        }
      } else if (field === 'egress' && g.egressHosts !== null && !g.egressHosts.includes(e)) {
        throw new Forbidden(`this token may not allow egress to ${e}: allowed external hosts are ${g.egressHosts.join(', ') || 'none'}`);
      } else if (field === 'ingress' && !ctx.unrestricted && !ctx.ipsOfReachable.has(e)) {
        throw new Forbidden(`this token may not open ingress from ${e}`);
      }
    }
  }
}
