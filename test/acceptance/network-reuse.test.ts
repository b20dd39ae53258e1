/**
 * A reused IP must not inherit trust across tenants (isolation issue, item
 * 3), with real containers, real nftables and real TCP through the official
 * SDK against a real `hearth serve`: tenant A's W1 lets its W2 in; W2 is
 * deleted; after the slot's rest, tenant B's next workspace W3 gets W2's
 * old address. W3 must not reach W1, and neither W1's config nor the live
 * ruleset may still name the address. A tenant cannot name another
 * tenant's workspace (or an address nobody holds) in its lists either.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

const PROBE = readFileSync(new URL('../helpers/net-probe.py', import.meta.url), 'utf8');
const TCP = 5432;
let h: HearthInstance;
let admin: Oblien;

before(async () => {
  if (needsRoot) return;
  // Pools off: which slot a create gets is what this file asserts: no warm pool holds or hands out slots here.
  h = await startHearth({ extraArgs: ['--warm-pool', '0'] });
  admin = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

async function tenant(slug: string): Promise<Oblien> {
  await admin.namespaces.create({ name: slug, slug } as never);
  const res = await fetch(`${h.api}/keys`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret },
    body: JSON.stringify({ name: `${slug} key`, namespace: slug }),
  });
  assert.equal(res.status, 201);
  return new Oblien({ ...(await res.json() as { clientId: string; clientSecret: string }), baseUrl: h.api });
}

async function create(c: Oblien, config: Record<string, unknown> = {}): Promise<{ id: string; ip: string; rt: Runtime }> {
  const w = await c.workspaces.create({ image: 'python-3.11', config: { ttl: '10m', ...config } } as never) as unknown as { id: string; info: { internal_ip: string } };
  await c.workspaces.waitUntilReady(w.id);
  const { token } = await c.workspaces.apiAccess.enable(w.id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.files.write({ fullPath: '/tmp/probe.py', content: PROBE });
  return { id: w.id, ip: w.info.internal_ip, rt };
}

async function tcp(rt: Runtime, ip: string): Promise<string> {
  const r = await rt.exec.run(['python3', '/tmp/probe.py', 'multi', JSON.stringify([['tcp', ip, TCP]])]);
  return (JSON.parse(r.stdout!) as string[])[0]!;
}

async function status(p: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as { status?: number }).status ?? -1;
  }
}

/** Does the live inet table name `ip` anywhere (as a whole address)? */
function rulesetNames(ip: string): boolean {
  const table = execFileSync('nft', ['list', 'table', 'inet', `hearth_${h.bridge}`], { encoding: 'utf8' });
  return new RegExp(`(^|[^\\d.])${ip.replace(/\./g, '\\.')}([^\\d.]|$)`, 'm').test(table);
}

let a: Oblien, b: Oblien;

test('a deleted workspace\'s address leaves every list and rule: the next holder of its slot (another tenant) reaches nothing it could', { skip: needsRoot, timeout: 240_000 }, async () => {
  [a, b] = [await tenant('reuse-a'), await tenant('reuse-b')];
  const w1 = await create(a);
  const w2 = await create(a);
  const wb = await create(b);
  await w1.rt.exec.run(['python3', '/tmp/probe.py', 'serve', String(TCP), String(TCP + 1), '/tmp/udp.log']);

  // A's W1 trusts A's W2.
  const x = w2.ip;
  await a.workspaces.network.update(w1.id, { ingress: [x] } as never);
  assert.equal(await tcp(w2.rt, w1.ip), `ok:${x}`, 'W2 reaches W1 while it exists');
  assert.equal(await tcp(wb.rt, w1.ip), 'timeout', 'B\'s workspace does not');
  assert.ok(rulesetNames(x), 'the rule names W2 while it exists');

  await a.workspaces.delete(w2.id);
  // After the slot's rest (5 s), B's next workspace gets the address.
  await new Promise((r) => setTimeout(r, 5_500));
  const w3 = await create(b);
  assert.equal(w3.ip, x, 'the freed slot went to tenant B (the lowest free one)');
  assert.equal(await tcp(w3.rt, w1.ip), 'timeout', 'the new holder of the address inherits nothing from W2');
  assert.deepEqual((await a.workspaces.network.get(w1.id) as { ingress: string[] }).ingress, [], 'W1\'s ingress no longer names the deleted workspace\'s address');
  assert.deepEqual((await admin.workspaces.get(w1.id) as unknown as { config: { ingress: string[] } }).config.ingress, []);
  await admin.workspaces.delete(w3.id);
  assert.equal(rulesetNames(x), false, 'no live rule names the address');
  for (const w of [w1, wb]) await admin.workspaces.delete(w.id);
});

test('a tenant cannot name another tenant\'s workspace, an address nobody holds, or a range of the workspace network', { skip: needsRoot, timeout: 240_000 }, async () => {
  a ??= await tenant('reuse-a');
  b ??= await tenant('reuse-b');
  const [w1, wb] = [await create(a), await create(b)];
  const net24 = h.subnet.split('.').slice(0, 3).join('.'); // the test instance's workspace network is a /24
  const free = `${net24}.200`;
  // The same refusal for "another tenant's" and "nobody's": the answer tells B nothing about A.
  assert.equal(await status(b.workspaces.network.update(wb.id, { ingress: [w1.ip] } as never)), 403, 'B: ingress from A\'s workspace');
  assert.equal(await status(b.workspaces.network.update(wb.id, { egress: [w1.ip] } as never)), 403, 'B: egress to A\'s workspace');
  assert.equal(await status(b.workspaces.network.update(wb.id, { egress: [free] } as never)), 403, 'B: egress to an address no workspace holds (the next workspace there)');
  assert.equal(await status(b.workspaces.create({ image: 'python-3.11', config: { egress: [free] } } as never)), 403, 'B: the same at create');
  assert.equal(await status(b.workspaces.network.update(wb.id, { egress: [`${net24}.0/28`] } as never)), 400, 'B: a range inside the workspace network');
  assert.equal(await status(admin.workspaces.network.update(w1.id, { ingress: [free] } as never)), 400, 'even the operator: an address nobody holds names nobody');
  const wbNet = await admin.workspaces.network.get(wb.id) as { ingress: string[]; egress: string[] };
  assert.deepEqual([wbNet.ingress, wbNet.egress], [[], []], 'nothing refused was stored');
  for (const w of [w1, wb]) await admin.workspaces.delete(w.id);
});
