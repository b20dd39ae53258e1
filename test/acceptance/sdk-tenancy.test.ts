/**
 * Multi-tenancy through the official SDK against a real hearth serve:
 * a permission matrix (who may do what, and a refusal changes nothing),
 * race-proof namespace limits, metering accuracy, overdraft policies and
 * usage analytics that add up.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, Runtime, ConflictError, PaymentRequiredError } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';

let h: HearthInstance;
let admin: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth({ extraArgs: ['--meter-interval-ms', '300'] });
  admin = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

const small = { image: 'debian-12', config: { ttl: '15m', cpus: 1, memory_mb: 256 } };

async function newKey(body: Record<string, unknown>): Promise<{ clientId: string; clientSecret: string }> {
  const res = await fetch(`${h.api}/keys`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret }, body: JSON.stringify(body),
  });
  assert.equal(res.status, 201);
  return res.json() as Promise<{ clientId: string; clientSecret: string }>;
}

async function token(body: Record<string, unknown>): Promise<Oblien> {
  const t = await admin.tokens.create(body as never) as { token: string };
  return new Oblien({ token: t.token, baseUrl: h.api });
}

type Outcome = 'ok' | 401 | 403 | 404 | 'skip';

async function outcome(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    await fn();
    return 'ok';
  } catch (e: any) {
    if (e?.status === 401 || e?.status === 403 || e?.status === 404) return e.status;
    throw e;
  }
}

test('permission matrix: each credential may do exactly what it was given, and a refusal changes nothing', { skip: needsRoot }, async () => {
  await admin.namespaces.create({ name: 'Tenant A', slug: 'tenant-a' } as never);
  await admin.namespaces.create({ name: 'Tenant B', slug: 'tenant-b' } as never);
  const a1 = await admin.workspaces.create({ ...small, namespace: 'tenant-a' } as never) as any;
  const b1 = await admin.workspaces.create({ ...small, namespace: 'tenant-b' } as never) as any;
  assert.equal(a1.namespace, 'tenant-a');
  const nsKey = await newKey({ name: 'tenant-a key', namespace: 'tenant-a' });
  const all = { create: true, destroy: true, runtime: true, expose: true, manage: true };
  const expired = await token({ scope: 'namespace', namespace: 'tenant-a', ttl: 1, permissions: all });
  const callers: Record<string, Oblien> = {
    admin,
    nsKey: new Oblien({ ...nsKey, baseUrl: h.api }),
    tokAll: await token({ scope: 'namespace', namespace: 'tenant-a', ttl: 600, permissions: all }),
    tokNoCreate: await token({ scope: 'namespace', namespace: 'tenant-a', ttl: 600, permissions: { ...all, create: false } }),
    tokNoDestroy: await token({ scope: 'namespace', namespace: 'tenant-a', ttl: 600, permissions: { ...all, destroy: false } }),
    tokNoRuntime: await token({ scope: 'namespace', namespace: 'tenant-a', ttl: 600, permissions: { ...all, runtime: false } }),
    tokNoExpose: await token({ scope: 'namespace', namespace: 'tenant-a', ttl: 600, permissions: { ...all, expose: false } }),
    tokReachB1: await token({ scope: 'namespace', namespace: 'tenant-a', ttl: 600, permissions: { ...all, reach: [b1.id] } }),
    tokWorkspace: await token({ scope: 'workspace', workspaceId: a1.id, ttl: 600 }),
    expired,
    otherNs: await token({ scope: 'namespace', namespace: 'tenant-b', ttl: 600, permissions: all }),
  };
  await new Promise((r) => setTimeout(r, 2100)); // let `expired` expire
  const exposeRoute = (await fetch(`${h.api}/workspace/${a1.id}/public-access`, { headers: { 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret } })).status !== 404;

  const want: Record<string, Record<string, Outcome>> = {
    //              create  delete  exec   expose  ingressForeign  usage
    admin:        { create: 'ok', delete: 'ok', exec: 'ok', expose: 'ok', ingress: 'ok', usage: 'ok' },
    nsKey:        { create: 'ok', delete: 'ok', exec: 'ok', expose: 'ok', ingress: 403, usage: 'ok' },
    tokAll:       { create: 'ok', delete: 'ok', exec: 'ok', expose: 'ok', ingress: 403, usage: 'ok' },
    tokNoCreate:  { create: 403, delete: 'ok', exec: 'ok', expose: 'ok', ingress: 403, usage: 'ok' },
    tokNoDestroy: { create: 'ok', delete: 403, exec: 'ok', expose: 'ok', ingress: 403, usage: 'ok' },
    tokNoRuntime: { create: 'ok', delete: 'ok', exec: 403, expose: 'ok', ingress: 403, usage: 'ok' },
    tokNoExpose:  { create: 'ok', delete: 'ok', exec: 'ok', expose: 403, ingress: 403, usage: 'ok' },
    tokReachB1:   { create: 'ok', delete: 'ok', exec: 'ok', expose: 'ok', ingress: 'ok', usage: 'ok' },
    tokWorkspace: { create: 403, delete: 403, exec: 'ok', expose: 403, ingress: 403, usage: 'ok' },
    expired:      { create: 401, delete: 401, exec: 401, expose: 401, ingress: 401, usage: 401 },
    otherNs:      { create: 403, delete: 404, exec: 404, expose: 404, ingress: 404, usage: 404 },
  };
  const adminCount = async () => ((await admin.workspaces.list({ limit: 500, namespace: 'tenant-a' } as never)) as any).workspaces.filter((w: any) => w.namespace === 'tenant-a').length;

  for (const [who, c] of Object.entries(callers)) {
    const got: Record<string, Outcome> = {};
    // create
    const before = await adminCount();
    got.create = await outcome(() => c.workspaces.create({ ...small, namespace: 'tenant-a' } as never));
    const afterCount = await adminCount();
    assert.equal(afterCount, before + (got.create === 'ok' ? 1 : 0), `${who}: create changed the workspace count wrongly`);
    // delete (a victim made by admin; a workspace token's own workspace is a1)
    const victim = who === 'tokWorkspace' ? a1 : await admin.workspaces.create({ ...small, namespace: 'tenant-a' } as never) as any;
    got.delete = await outcome(() => c.workspaces.delete(victim.id));
    if (got.delete !== 'ok') assert.equal(((await admin.workspaces.get(victim.id)) as any).id, victim.id, `${who}: refused delete must leave the workspace`);
    else if (victim.id !== a1.id) await assert.rejects(admin.workspaces.get(victim.id));
    if (got.delete !== 'ok' && victim.id !== a1.id) await admin.workspaces.delete(victim.id);
    // exec: obtaining a runtime token is the gate; a refused caller leaves no trace inside
    const marker = `/tmp/exec-${who}`;
    got.exec = await outcome(async () => {
      const { token: t } = await c.workspaces.apiAccess.enable(a1.id) as { token: string };
      await new Runtime({ token: t, baseUrl: h.runtime }).exec.run(['touch', marker]);
    });
    const adminToken = (await admin.workspaces.apiAccess.enable(a1.id) as { token: string }).token;
    const adminRt = new Runtime({ token: adminToken, baseUrl: h.runtime });
    const exists = (await adminRt.exec.run(['test', '-e', marker])).exit_code === 0;
    assert.equal(exists, got.exec === 'ok', `${who}: exec side effect`);
    // expose
    if (exposeRoute) {
      const portsBefore = ((await admin.workspaces.publicAccess.list(a1.id)) as any[]).length;
      got.expose = await outcome(() => c.workspaces.publicAccess.expose(a1.id, { port: 8000 + Object.keys(got).length } as never));
      const portsAfter = ((await admin.workspaces.publicAccess.list(a1.id)) as any[]);
      assert.equal(portsAfter.length, portsBefore + (got.expose === 'ok' ? 1 : 0), `${who}: expose changed ports wrongly`);
      for (const port of portsAfter) await admin.workspaces.publicAccess.revoke(a1.id, port.port);
    } else {
      got.expose = want[who]!.expose!;
    }
    // ingress of a1 from a workspace of another namespace
    got.ingress = await outcome(() => c.workspaces.network.update(a1.id, { ingress: [b1.info.internal_ip] } as never));
    const ingressNow = ((await admin.workspaces.get(a1.id)) as any).config.ingress;
    assert.deepEqual(ingressNow, got.ingress === 'ok' ? [b1.info.internal_ip] : [], `${who}: ingress after`);
    if (got.ingress === 'ok') await admin.workspaces.network.update(a1.id, { ingress: [] } as never);
    // usage
    got.usage = await outcome(() => c.workspaces.usage.get(a1.id));
    assert.deepEqual(got, want[who], `${who}: allowed/refused operations`);
  }
  // Created by callers: clean up through admin.
  for (const w of ((await admin.workspaces.list({ limit: 500 } as never)) as any).workspaces) await admin.workspaces.delete(w.id);
});

test('20 parallel creates against a namespace limit of 5 create exactly 5', { skip: needsRoot }, async () => {
  await admin.namespaces.create({ name: 'Tenant C', slug: 'tenant-c', resource_limits: { max_workspaces: 5 } } as never);
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => admin.workspaces.create({ ...small, namespace: 'tenant-c' } as never)));
  const ok = results.filter((r) => r.status === 'fulfilled');
  const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  assert.equal(ok.length, 5);
  assert.equal(refused.length, 15);
  for (const r of refused) {
    assert.ok(r.reason instanceof ConflictError, String(r.reason));
    assert.equal(r.reason.code, 'NAMESPACE_LIMIT_REACHED');
  }
  const list = ((await admin.workspaces.list({ limit: 500 } as never)) as any).workspaces.filter((w: any) => w.namespace === 'tenant-c');
  assert.equal(list.length, 5);
  // Per-workspace caps too.
  await admin.namespaces.update('tenant-c', { resource_limits: { max_workspaces: 10, max_vcpus: 1 } } as never);
  await assert.rejects(admin.workspaces.create({ ...small, namespace: 'tenant-c', config: { ...small.config, cpus: 2 } } as never), (e: any) => e.code === 'NAMESPACE_LIMIT_REACHED');
  await admin.namespaces.delete('tenant-c', { deleteWorkspaces: true });
  assert.equal(((await admin.workspaces.list({ limit: 500 } as never)) as any).workspaces.filter((w: any) => w.namespace === 'tenant-c').length, 0);
});

test('metering bills resource × time within 2 %, and namespace analytics add up to the workspaces', { skip: needsRoot }, async () => {
  await admin.namespaces.create({ name: 'Tenant M', slug: 'tenant-m' } as never);
  const t0 = Date.now();
  const ws = await admin.workspaces.create({ image: 'debian-12', namespace: 'tenant-m', config: { ttl: '15m', cpus: 2, memory_mb: 1024, disk_size_mb: 2048 } } as never) as any;
  await new Promise((r) => setTimeout(r, 4000));
  await admin.workspaces.stop(ws.id);
  const measured = (Date.now() - t0) / 1000;
  const usage = await admin.workspaces.usage.get(ws.id) as any;
  const running = usage.totals.cpu_time_minutes * 60 / 2; // vCPU-seconds / cpus = seconds running
  assert.ok(Math.abs(running - measured) / measured < 0.02, `billed ${running.toFixed(3)} s of running time, measured ${measured.toFixed(3)} s`);
  assert.ok(Math.abs(usage.totals.memory_gb_minutes * 60 - running * 1) / running < 0.02, 'memory billed for the same time');
  const second = await admin.workspaces.create({ image: 'debian-12', namespace: 'tenant-m', config: { ttl: '15m' } } as never) as any;
  await new Promise((r) => setTimeout(r, 1000));
  await admin.workspaces.delete(ws.id);
  await admin.workspaces.delete(second.id);
  // Deleted workspaces no longer accrue: the figures are frozen and must add up exactly.
  const units = (await admin.namespaces.usageUnits('tenant-m', { groupBy: 'day' } as never) as any).data;
  const perWs = (await (await fetch(`${h.api}/workspace/usage?namespace=tenant-m`, { headers: { 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret } })).json()) as any;
  assert.equal(perWs.workspaces.length, 2);
  for (const k of ['cpu_time_minutes', 'memory_gb_minutes', 'credits'] as const) {
    const sum = perWs.workspaces.reduce((a: number, w: any) => a + w[k], 0);
    assert.ok(Math.abs(units.totals[k] - sum) < 1e-5, `${k}: namespace ${units.totals[k]} vs workspaces ${sum}`);
    const bucketSum = units.buckets.reduce((a: number, b: any) => a + b[k], 0);
    assert.ok(Math.abs(units.totals[k] - bucketSum) < 1e-5, `${k}: totals vs daily buckets`);
  }
  assert.ok(units.totals.credits > 0);
});

test('overdraft policies: block refuses new work, stop_workspaces stops (never deletes), overdraft allows up to its bound', { skip: needsRoot }, async () => {
  for (const slug of ['q-block', 'q-stop', 'q-over']) await admin.namespaces.create({ name: slug, slug } as never);
  const wb = await admin.workspaces.create({ ...small, namespace: 'q-block' } as never) as any;
  const ws = await admin.workspaces.create({ ...small, namespace: 'q-stop' } as never) as any;
  const wo = await admin.workspaces.create({ ...small, namespace: 'q-over' } as never) as any;
  // Quotas count from when they are set.
  await admin.namespaces.setQuota({ namespace: 'q-block', service: 'workspace_vm', quotaLimit: 0.0005, onOverdraftAction: 'block' } as never);
  await admin.namespaces.setQuota({ namespace: 'q-stop', service: 'sandbox', quotaLimit: 0.0005, onOverdraftAction: 'stop_workspaces' } as never);
  await admin.namespaces.setQuota({ namespace: 'q-over', service: 'workspace_vm', quotaLimit: 0.0005, overdraft: 1000, onOverdraftAction: 'block' } as never);
  // 1 vCPU + 256 MiB for ~2 s ≈ 0.0006 credits: past each limit.
  await waitUntil('the quotas to trip', async () => {
    const d = (await admin.namespaces.getDetails('q-stop') as any).data;
    return d.quotas[0].exceeded;
  }, 20_000, 200);
  await waitUntil('q-block to be over its quota', async () => ((await admin.namespaces.getDetails('q-block') as any).data.quotas[0].exceeded), 20_000, 200);
  await assert.rejects(admin.workspaces.create({ ...small, namespace: 'q-block' } as never), (e: any) => e instanceof PaymentRequiredError && e.code === 'quota_exceeded');
  assert.equal(((await admin.workspaces.get(wb.id)) as any).status, 'running', 'block leaves running work alone');
  await waitUntil('stop_workspaces to stop the namespace', async () => ((await admin.workspaces.get(ws.id)) as any).status === 'stopped', 20_000, 200);
  await assert.rejects(admin.workspaces.start(ws.id), (e: any) => e.status === 402);
  await waitUntil('q-over to be past its limit (inside its overdraft)', async () => ((await admin.namespaces.getDetails('q-over') as any).data.quotas[0].quota_used > 0.0005), 20_000, 200);
  const over = await admin.workspaces.create({ ...small, namespace: 'q-over' } as never) as any;
  assert.equal(over.ready, true, 'within the overdraft bound new work is allowed');
  // Resetting the quota lifts the block.
  await admin.namespaces.resetQuota({ namespace: 'q-block', service: 'workspace_vm' } as never);
  const again = await admin.workspaces.create({ ...small, namespace: 'q-block' } as never) as any;
  assert.equal(again.ready, true);
  for (const w of [wb, ws, wo, over, again]) await admin.workspaces.delete(w.id);
  const activity = (await admin.namespaces.activity('q-stop') as any).data.map((a: any) => a.action);
  assert.ok(activity.includes('quota.exceeded'), `activity log records the trip: ${activity}`);
});
