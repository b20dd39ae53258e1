/**
 * Private networking through the official `oblien` SDK, unmodified, against
 * a real `hearth serve` (seed rows 8-9 of contract §29.2, and §7's network
 * sub-resource): create with ingress/egress/allow_internet, read and change
 * the network live, outbound IP. Traffic is real TCP between containers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Oblien, Runtime, ValidationError } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

const PROBE = readFileSync(new URL('../helpers/net-probe.py', import.meta.url), 'utf8');
let h: HearthInstance;
let client: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

async function prepare(id: string, serve: boolean): Promise<Runtime> {
  await client.workspaces.waitUntilReady(id);
  const { token } = await client.workspaces.apiAccess.enable(id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.files.write({ fullPath: '/tmp/probe.py', content: PROBE });
  if (serve) await rt.exec.run(['python3', '/tmp/probe.py', 'serve', '5432', '5433', '/tmp/udp.log']);
  return rt;
}

async function tcp(rt: Runtime, ip: string): Promise<string> {
  const r = await rt.exec.run(['python3', '/tmp/probe.py', 'multi', JSON.stringify([['tcp', ip, 5432]])]);
  return (JSON.parse(r.stdout!) as string[])[0]!;
}

test('seed rows 8-9: an air-gapped store only its agent reaches; a sandbox whose egress names it', { skip: needsRoot }, async () => {
  const agent = await client.workspaces.create({ image: 'python-3.11', config: { ttl: '10m' } } as never) as Record<string, any>;
  const agentIp = agent.info.internal_ip as string;
  assert.match(agentIp, /^10\.\d+\.\d+\.\d+$/);
  // Row 8.
  const userData = await client.workspaces.create({ image: 'python-3.11', mode: 'permanent', config: { allow_internet: false, ingress: [agentIp] } } as never) as Record<string, any>;
  const dataIp = userData.info.internal_ip as string;
  assert.match(dataIp, /^10\.\d+\.\d+\.\d+$/, 'internal_ip on the object create() returns');
  // Row 9.
  const sandbox = await client.workspaces.create({ image: 'python-3.11', config: { ttl: '10m', egress: [dataIp], allow_internet: false } } as never) as Record<string, any>;
  const [rtAgent, , rtSandbox] = await Promise.all([prepare(agent.id, false), prepare(userData.id, true), prepare(sandbox.id, true)]);

  const dataNet = await client.workspaces.network.get(userData.id) as Record<string, any>;
  assert.equal(dataNet.ip, dataIp);
  assert.equal(dataNet.allow_internet, false);
  assert.deepEqual(dataNet.ingress, [agentIp]);
  assert.equal(dataNet.outbound_ip, null);
  assert.deepEqual((await client.workspaces.network.get(sandbox.id) as Record<string, any>).egress, [dataIp]);

  assert.equal(await tcp(rtAgent, dataIp), `ok:${agentIp}`, 'the agent reaches its store');
  assert.equal(await tcp(rtSandbox, dataIp), 'timeout', 'the sandbox is not on the store\'s ingress yet');
  assert.equal(await tcp(rtAgent, (sandbox.info.internal_ip as string)), 'timeout', 'nobody reaches the sandbox');

  // Live: the store lets the sandbox in (no restart of either).
  const updated = await client.workspaces.network.update(userData.id, { ingress: [agentIp, sandbox.info.internal_ip] } as never) as Record<string, any>;
  assert.deepEqual(updated.ingress, [agentIp, sandbox.info.internal_ip]);
  assert.equal(await tcp(rtSandbox, dataIp), `ok:${sandbox.info.internal_ip}`);
  assert.equal(await tcp(rtSandbox, agentIp), 'timeout', 'the sandbox\'s egress names the store only');

  // And out again.
  await client.workspaces.network.update(userData.id, { ingress: [agentIp] } as never);
  assert.equal(await tcp(rtSandbox, dataIp), 'timeout');

  await assert.rejects(client.workspaces.network.update(userData.id, { ingress: ['not-an-ip'] } as never), ValidationError);
  await assert.rejects(client.workspaces.network.applyOutboundIp(userData.id, { ip: '192.0.2.123' } as never), ValidationError);
  const ws = await client.workspaces.get(userData.id) as Record<string, any>;
  assert.equal(ws.config.allow_internet, false, 'the network knobs are in the workspace config too');
  for (const w of [sandbox, userData, agent]) await client.workspaces.delete(w.id);
});
