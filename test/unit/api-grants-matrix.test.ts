/**
 * Route × grant matrix, generated from the route table: for every route the
 * API serves and every grant turned off one at a time (a namespace token
 * minted through POST /tokens with all grants but that one), the call is
 * refused with 403 in the contract's error shape iff the table says the route
 * needs that grant. Body rules and state rules declared next to routes are
 * enumerated the same way: a body (or a stored workspace) that triggers the
 * rule is refused without its grant, and the same call without the trigger is
 * not. A new route, or a new rule, is covered without touching this file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { adminPrincipal } from '../../src/control/workspaces/index.ts';
import type { RouteDecl } from '../../src/api/route-table.ts';
import { ALL, refusedFor, startGrantsHarness, type Grant, type GrantsHarness, type Reply } from './grants-harness.ts';

const NS = 'grants';
const GRANTS = Object.keys(ALL) as Grant[];

let h: GrantsHarness;
let allGrants: Record<string, string>;
const without: Partial<Record<Grant, Record<string, string>>> = {};
let target: { id: string; config: string; mode: string };

before(async () => {
  h = await startGrantsHarness();
  assert.equal((await h.call('POST', '/namespaces', { name: 'Grants', slug: NS })).status, 201);
  allGrants = await h.token({ scope: 'namespace', namespace: NS, permissions: ALL });
  for (const g of GRANTS) without[g] = await h.token({ scope: 'namespace', namespace: NS, permissions: { ...ALL, [g]: false } });
  target = await freshTarget();
});
after(async () => { await h?.close(); });

/** A stopped workspace in the tokens' namespace (stopped: agent routes answer 409 at once and no stream stays open). */
async function freshTarget(): Promise<{ id: string; config: string; mode: string }> {
  const id = await h.workspace({ namespace: NS });
  await h.service.stop(adminPrincipal, id);
  const ws = (await h.service.byId(id))!;
  return { id, config: JSON.stringify(ws.config), mode: ws.mode };
}

/** Back to a plain stopped target before each call: calls that are allowed may start, change or delete it. */
async function ensureTarget(): Promise<void> {
  const ws = await h.service.byId(target.id);
  if (ws && ws.state === 'stopped' && JSON.stringify(ws.config) === target.config && ws.mode === target.mode) return;
  if (ws && ws.state !== 'deleted' && ws.state !== 'deleting') await h.service.delete(adminPrincipal, ws.id).catch(() => undefined);
  target = await freshTarget();
}

function urlOf(r: RouteDecl): string {
  const ns = r.url.startsWith('/namespaces/') || r.url.startsWith('/credits/namespaces/');
  const values: Record<string, string> = {
    id: r.url.startsWith('/keys/') ? 'key_none' : ns ? NS : target.id,
    namespace: NS, wid: 'w1', sid: 'snap_none', port: '8080', name: 'boot.log', version: 'v1', domain: 'example.com',
  };
  return r.url.replace(/:([A-Za-z]+)/g, (_m, k: string) => values[k] ?? 'x');
}

async function send(r: RouteDecl, headers: Record<string, string>, body?: Record<string, unknown>): Promise<Reply> {
  await ensureTarget();
  const payload = body ?? (r.method === 'GET' || r.method === 'DELETE' ? undefined : {});
  const res = await h.call(r.method, urlOf(r), payload, headers);
  // Workspaces created along the way are not the target: remove them so the host never fills up.
  if (r.method === 'POST' && r.url === '/workspace' && res.status === 201) await h.service.delete(adminPrincipal, res.json.workspace.id);
  return res;
}

const name = (r: RouteDecl) => `${r.method} ${r.url}`;

test('the table declares the grants that keep code, secrets and deletion behind runtime and destroy', () => {
  const byName = new Map(h.api.routes.routes.map((r) => [name(r), r]));
  const needs = (route: string, g: Grant) => {
    const r = byName.get(route);
    assert.ok(r, `${route} is served`);
    return r.grants.includes(g);
  };
  for (const route of [
    'POST /workspace/:id/workloads', 'PUT /workspace/:id/workloads/:wid', 'PATCH /workspace/:id/workloads/:wid',
    'POST /workspace/:id/workloads/:wid/start', 'POST /workspace/:id/workloads/:wid/restart',
    'GET /workspace/:id/workloads/:wid/logs', 'GET /workspace/:id/workloads/:wid/logs/stream',
    'POST /workspace/:id/ssh/enable', 'POST /workspace/:id/ssh/password', 'POST /workspace/:id/ssh/key',
    'GET /workspace/:id/logs', 'GET /workspace/:id/logs/list', 'GET /workspace/:id/logs/file/:name',
    'GET /workspace/:id/logs/stream/boot', 'GET /workspace/:id/logs/stream/cmd',
    'POST /workspace/:id/runtime-api-access/enable', 'GET /workspace/:id/runtime-api-access/token', 'GET /workspace/:id/runtime-api-access/token/raw',
  ]) assert.ok(needs(route, 'runtime'), `${route} needs runtime`);
  for (const route of ['DELETE /workspace/:id', 'DELETE /workspace/:id/lifecycle']) assert.ok(needs(route, 'destroy'), `${route} needs destroy`);
  const bodyFields = (route: string, g: Grant) => byName.get(route)!.body.filter((b) => b.grant === g).map((b) => b.field);
  for (const route of ['POST /workspace', 'PUT /workspace/:id']) {
    assert.deepEqual(bodyFields(route, 'destroy'), ['config.remove_on_exit', 'config.ttl_action'], route);
    assert.deepEqual(bodyFields(route, 'runtime'), ['config.cmd', 'config.workloads', 'config.env'], route);
  }
  for (const route of ['POST /workspace/:id/lifecycle/temporary', 'PUT /workspace/:id/lifecycle/ttl']) {
    assert.deepEqual(bodyFields(route, 'destroy'), ['remove_on_exit', 'ttl_action'], route);
  }
  for (const route of ['POST /workspace/:id/stop', 'POST /workspace/:id/snapshot', 'PUT /workspace/:id', 'POST /workspace/:id/ping', 'PUT /workspace/:id/lifecycle/ttl', 'POST /workspace/:id/lifecycle/temporary']) {
    assert.ok(byName.get(route)!.state.some((s) => s.grant === 'destroy'), `${route} has a destroy state rule`);
  }
});

test('every route × every grant off: refused (403, contract shape) iff the table says the route needs it', async () => {
  const routes = h.api.routes.routes;
  assert.ok(routes.length > 100, `the table has ${routes.length} routes`);
  const wrong: string[] = [];
  for (const r of routes) {
    const base = await send(r, allGrants);
    for (const g of GRANTS) if (refusedFor(base, g)) wrong.push(`${name(r)}: refused for ${g} with every grant`);
    for (const g of GRANTS) {
      const res = await send(r, without[g]!);
      const needed = r.grants.includes(g);
      if (needed !== refusedFor(res, g)) wrong.push(`${name(r)} without ${g}: ${res.status} ${String(res.json.message)} (table: ${needed ? 'needs it' : 'does not need it'})`);
    }
  }
  assert.deepEqual(wrong, []);
});

/** A body with `field` (a dotted path) set to `value`, on top of what the route needs to get past validation. */
function bodyWith(r: RouteDecl, field: string, value: unknown): Record<string, unknown> {
  const body: Record<string, unknown> = r.url === '/workspace' ? { image: 'debian-12', namespace: NS, mode: 'temporary', config: { ttl: '1h' } } : {};
  const steps = field.split('.');
  let at = body;
  for (const s of steps.slice(0, -1)) at = (at[s] ??= {}) as Record<string, unknown>;
  at[steps.at(-1)!] = value;
  return body;
}

const SAMPLE: Record<string, unknown> = { cmd: ['true'], workloads: [], env: ['TOKEN=s3cret'] };

test('every body rule: a body that triggers it is refused without its grant; the same call without the trigger is not', async () => {
  const wrong: string[] = [];
  let rules = 0;
  for (const r of h.api.routes.routes) {
    for (const rule of r.body) {
      rules++;
      const values = rule.values === 'any' ? [SAMPLE[rule.field.split('.').at(-1)!] ?? 'x'] : rule.values;
      for (const v of values) {
        const body = bodyWith(r, rule.field, v);
        const off = await send(r, without[rule.grant]!, body);
        if (!refusedFor(off, rule.grant)) wrong.push(`${name(r)} ${JSON.stringify(body)} without ${rule.grant}: ${off.status} ${String(off.json.message)}`);
        const all = await send(r, allGrants, body);
        if (GRANTS.some((g) => refusedFor(all, g))) wrong.push(`${name(r)} ${JSON.stringify(body)} with every grant: ${String(all.json.message)}`);
      }
      if (!r.grants.includes(rule.grant)) {
        const plain = await send(r, without[rule.grant]!);
        if (refusedFor(plain, rule.grant)) wrong.push(`${name(r)} {} without ${rule.grant}: refused though nothing triggers the rule`);
      }
    }
  }
  assert.ok(rules >= 10, `${rules} body rules`);
  assert.deepEqual(wrong, []);
});

test('every state rule: a workspace in the triggering state is protected (refused, left as it was); one that is not, is not', async () => {
  const wrong: string[] = [];
  let rules = 0;
  for (const r of h.api.routes.routes) {
    for (const rule of r.state) {
      rules++;
      // The stored workspace the rule is about.
      await ensureTarget();
      const ws = (await h.service.byId(target.id))!;
      const config = JSON.stringify({ ...ws.config, ...rule.example.config });
      await h.db.updateTable('workspaces').set({ config, mode: 'temporary' }).where('id', '=', ws.id).execute();
      const off = await h.call(r.method, urlOf(r), rule.example.body, without[rule.grant]!);
      if (!refusedFor(off, rule.grant)) wrong.push(`${name(r)} ${JSON.stringify(rule.example)} without ${rule.grant}: ${off.status} ${String(off.json.message)}`);
      const after = await h.service.byId(ws.id);
      if (!after || after.state !== 'stopped' || JSON.stringify(after.config) !== config) wrong.push(`${name(r)}: a refused call changed the workspace`);
      // The same call, the same body, a workspace not in that state.
      const plain = await send(r, without[rule.grant]!, rule.example.body);
      if (!r.grants.includes(rule.grant) && refusedFor(plain, rule.grant)) wrong.push(`${name(r)} ${JSON.stringify(rule.example.body)} without ${rule.grant} on a plain workspace: refused`);
      // With every grant the call goes through to the handler.
      await ensureTarget();
      await h.db.updateTable('workspaces').set({ config: JSON.stringify({ ...JSON.parse(target.config), ...rule.example.config }), mode: 'temporary' }).where('id', '=', target.id).execute();
      const all = await h.call(r.method, urlOf(r), rule.example.body, allGrants);
      if (GRANTS.some((g) => refusedFor(all, g))) wrong.push(`${name(r)} with every grant: ${String(all.json.message)}`);
      target.config = '';  // changed on purpose: the next call starts from a fresh target
    }
  }
  assert.ok(rules >= 6, `${rules} state rules`);
  assert.deepEqual(wrong, []);
});
