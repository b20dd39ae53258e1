/**
 * Grant rules that several routes share, declared next to each route in
 * src/api/routes/*.ts and checked by src/api/route-table.ts before the
 * handler runs. Two holes they close:
 *   - `destroy`: a body or a call that can end in the workspace's deletion
 *     (remove_on_exit, ttl_action "remove", a stop or a TTL of a workspace
 *     that is removed when it ends) is a delete, and needs what delete needs;
 *   - `runtime`: a body that makes a workspace run caller-chosen code
 *     (config.cmd, config.workloads) or sets its env (where secrets live).
 */
import type { BodyRule, RouteNeeds, StateRule, TargetWorkspace } from './route-table.ts';

/** Routes that run code in the workspace (workloads) or open a shell in it (SSH credentials). */
export const RUNS_CODE: RouteNeeds = { grants: ['runtime'] };
/** Routes that read what the workspace's programs print (logs), secrets included. */
export const READS_SECRETS: RouteNeeds = { grants: ['runtime'] };

const TRUE = [true, 'true'] as const;

/** Rules for a workspace config found at `prefix` in the body ('config.' for create/update, '' for lifecycle bodies). */
export function removalBody(prefix: string): BodyRule[] {
  return [
    { grant: 'destroy', field: `${prefix}remove_on_exit`, values: TRUE, why: 'a workspace removed on exit is deleted by its next stop' },
    { grant: 'destroy', field: `${prefix}ttl_action`, values: ['remove'], why: 'a TTL that removes deletes the workspace' },
  ];
}

export function codeBody(prefix: string): BodyRule[] {
  return [
    { grant: 'runtime', field: `${prefix}cmd`, values: 'any', why: 'config.cmd runs as a workload' },
    { grant: 'runtime', field: `${prefix}workloads`, values: 'any', why: 'config.workloads run as workloads' },
    { grant: 'runtime', field: `${prefix}env`, values: 'any', why: 'env reaches the code the workspace runs and holds its secrets' },
  ];
}

/** Whether the workspace is deleted when it stops or its TTL ends, with `change` applied on top of what is stored. */
export function endsInRemoval(ws: TargetWorkspace, change: Record<string, unknown> = {}): boolean {
  const get = (k: string) => (change[k] !== undefined ? change[k] : ws.config[k]);
  return get('remove_on_exit') === true || get('remove_on_exit') === 'true' || get('ttl_action') === 'remove';
}

const setsTtl = (v: unknown) => v !== undefined && v !== null && v !== 0 && v !== '';
const configOf = (body: Record<string, unknown>): Record<string, unknown> =>
  (typeof body.config === 'object' && body.config !== null && !Array.isArray(body.config) ? body.config as Record<string, unknown> : {});

/** A stop (or a snapshot that stops) of a workspace removed on exit deletes it. */
export const stopRemoves: StateRule = {
  grant: 'destroy', why: 'the workspace has `remove_on_exit` (its stop deletes it)',
  applies: (ws) => ws.config.remove_on_exit === true,
  example: { config: { remove_on_exit: true }, body: {} },
};

export const snapshotStopRemoves: StateRule = {
  grant: 'destroy', why: '`after` is "stop" and the workspace has `remove_on_exit`',
  applies: (ws, body) => body.after === 'stop' && ws.config.remove_on_exit === true,
  example: { config: { remove_on_exit: true }, body: { after: 'stop' } },
};

/** Setting a TTL (in the body's `config`) on a workspace whose TTL ends in removal schedules its deletion. */
export const configTtlRemoves: StateRule = {
  grant: 'destroy', why: 'it sets a TTL and the workspace (with the body applied) is removed on exit or at its TTL',
  applies: (ws, body) => setsTtl(configOf(body).ttl) && endsInRemoval(ws, configOf(body)),
  example: { config: { ttl_action: 'remove' }, body: { config: { ttl: '1h' } } },
};

/** The same for lifecycle bodies (`{ ttl, ttl_action, remove_on_exit }` at the top level). */
export const lifecycleTtlRemoves: StateRule = {
  grant: 'destroy', why: 'it sets a TTL and the workspace (with the body applied) is removed on exit or at its TTL',
  applies: (ws, body) => setsTtl(body.ttl) && endsInRemoval(ws, body),
  example: { config: { ttl_action: 'remove' }, body: { ttl: '1h' } },
};

/** A ping with its own ttl_seconds moves the expiry of a workspace removed at its TTL (possibly to now). */
export const pingTtlRemoves: StateRule = {
  grant: 'destroy', why: '`ttl_seconds` is set and the workspace is temporary and removed on exit or at its TTL',
  applies: (ws, body) => body.ttl_seconds !== undefined && ws.mode === 'temporary' && endsInRemoval(ws),
  example: { config: { ttl_action: 'remove' }, body: { ttl_seconds: 1 } },
};
